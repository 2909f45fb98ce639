"""The segmentation network: an smp model, split into encoder, decoder and named heads.

Adaptation terms need more than the logits: encoder features (feature adversarial), a second
per-pixel classifier on an earlier stage (multi-level AdaptSegNet / ADVENT) and, for some
methods, image-level class scores. ``extract_feat`` / ``decode`` / ``head`` expose each part,
and ``forward`` is built on them, so every caller sees the same computation.
"""

from __future__ import annotations

import inspect
import re
import warnings
from typing import Any, Optional, Sequence, Union

import segmentation_models_pytorch as smp
import torch.nn as nn
import torch.nn.functional as F
from segmentation_models_pytorch.encoders.timm_vit import TimmViTEncoder
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from uda.models.checkpointing import enable_activation_checkpointing
from uda.models.deeplabv2 import ASPPv2
from uda.models.encoder_checkpoint import EncoderLoadReport, load_encoder_checkpoint
from uda.models.encoder_stages import encoder_stage_ids
from uda.models.insertions import LEGACY_ARGUMENTS, ConstantLogit, SegmentorInsertion
from uda.models.trainable import apply_train_only
from uda.models.weights import SOURCE_KEYS, hub_weights_error, resolve_encoder_checkpoint
from uda.registry import MODELS

Size = Sequence[int]

# The config key that builds each named head, for error messages.
HEAD_CONFIG = {
    'aux': "segmentor.aux_head=dict(type='conv', in_index=-2, channels=256)",
    'cls': "segmentor.aux_params=dict(classes=<K>) (smp's classification head)",
}


class EncoderFeatures(list):
    """The encoder's list of [B, C_i, H_i, W_i] maps, plus a ViT's prefix tokens.

    smp's ``TimmViTEncoder`` (plain ViTs, DPT) returns the spatial maps and, per map, the
    class / register tokens ([B, T, C_i] or None) that DPT's ``readout='cat'|'add'`` fuses
    back; the list stays a list so terms that read ``features[-1]`` need not know.
    """

    prefix_tokens: Optional[list[Optional[Tensor]]] = None


def architecture_only(segmentor_cfg: Any) -> dict:
    """The segmentor config without its initial weights, for rebuilding a trained network.

    ``tools/test.py``, the exporters and the export sidecar load the trained weights after
    building, so reading ``encoder_checkpoint`` (a file that may have moved) or downloading
    ``encoder_weights`` there would be wasted work, or an error on another machine.
    """
    cfg = dict(segmentor_cfg)
    cfg.pop('encoder_checkpoint', None)
    if 'encoder_weights' in cfg:
        cfg['encoder_weights'] = None
    return cfg


def resize_logits(logits: Tensor, size: Optional[Size], align_corners: bool) -> Tensor:
    """Bilinear resize of [B, C, h, w] maps to ``size`` (no-op when None or already that size)."""
    if size is None or tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, tuple(size), mode='bilinear', align_corners=align_corners)


def build_aux_head(cfg: dict, in_channels: int, num_classes: int) -> nn.Module:
    """The per-pixel auxiliary classifier described by ``segmentor.aux_head``.

    ``type='conv'`` (default): conv3x3-BN-ReLU-conv1x1 with ``channels`` hidden channels.
    ``type='aspp'``: ADVENT's multi-level classifier, the DeepLab-v2 ASPP (four summed dilated
    3x3 convolutions to class scores, ``rates``), as ``layer5 = ClassifierModule(1024,
    [6, 12, 18, 24], [6, 12, 18, 24], num_classes)`` on layer3 in
    valeoai/ADVENT advent/model/deeplabv2.py @3e58d45.
    """
    cfg = dict(cfg)
    kind = cfg.pop('type', 'conv')
    cfg.pop('in_index', None)
    allowed = {'conv': {'channels'}, 'aspp': {'rates', 'summed_branches'}}
    if kind not in allowed:
        raise ValueError(f"segmentor.aux_head.type={kind!r} is unknown; use 'conv' or 'aspp'.")
    unknown = sorted(set(cfg) - allowed[kind])
    if unknown:
        raise ValueError(
            f'segmentor.aux_head (type={kind!r}): unknown key(s) {unknown}; it '
            f'accepts {sorted(allowed[kind] | {"type", "in_index"})}.'
        )
    if kind == 'aspp':
        return ASPPv2(
            in_channels,
            num_classes,
            tuple(cfg.get('rates', (6, 12, 18, 24))),
            cfg.get('summed_branches'),  # AdaptSegNet's released heads: 2 (see ASPPv2)
        )
    ch = int(cfg.get('channels', 256))
    return nn.Sequential(
        nn.Conv2d(in_channels, ch, 3, padding=1, bias=False),
        nn.BatchNorm2d(ch),
        nn.ReLU(inplace=True),
        nn.Conv2d(ch, num_classes, 1),
    )


@MODELS.register_module()
class SMPSegmentor(nn.Module):
    """Wrap ``smp.create_model`` as encoder (``extract_feat``), decoder (``decode``) and heads.

    ``forward(x)`` returns logits [B, C, H, W] at input size. With ``return_features``,
    ``return_aux`` or ``return_cls`` it returns a dict with ``logits``, ``features`` (the
    encoder's list of [B, C_i, H/2^i, W/2^i] maps), ``decoder`` (the decoder output),
    ``aux_logits`` ([B, C, H, W], head ``aux`` on encoder stage ``in_index``, resized to the
    input size) and ``cls_logits`` ([B, K], head ``cls``: smp's classification head on the last
    stage, built from ``aux_params``).

    Args:
        arch: smp architecture name (``Unet``, ``FPN``, ``DeepLabV3Plus``, ``DeepLabV2`` ...).
        encoder_name: smp / timm encoder name.
        encoder_weights: smp / timm pretrained weights name (fetched from the Hugging Face
            hub; offline, one error), or None (no download; tests use None). Paper configs
            name their init file in ``encoder_checkpoint`` instead.
        num_classes: Output classes.
        in_channels: Input channels.
        aux_head: If given, builds head ``aux`` on encoder stage ``in_index`` (-2, the
            penultimate, by default): ``dict(type='conv', in_index=-2, channels=256)`` or
            ADVENT's ``dict(type='aspp', in_index=-2, rates=(6, 12, 18, 24))``.
        align_corners: ``align_corners`` of the bilinear upsampling of logits (main and aux).
            DeepLab-v2 reference code (ADVENT, AdaptSegNet, SAC) upsamples with True, so its
            checkpoints evaluate as their authors' code does only with True.
        encoder_kwargs: Keyword arguments of ``timm.create_model`` for a ``tu-`` encoder
            (``img_size``, ``patch_size``, ``drop_path_rate`` ...). Plain ViTs
            (``tu-vit_*``) need ``arch='DPT'`` (smp's other decoders need a feature pyramid);
            for DPT ``dynamic_img_size`` defaults to True, so any input size divisible by the
            patch size works (timm resamples the position embedding per forward).
        encoder_checkpoint: Load an init file (ImageNet, COCO, self-supervised) into the
            encoder: ``dict(file=..., layout='auto', min_matched=0.9, checkpoint_key=None,
            revise_keys=())`` (:func:`uda.models.encoder_checkpoint.load_encoder_checkpoint`;
            layouts ``uda``, ``timm``, ``torchvision``, ``deeplab_caffe``, ``dino``,
            ``dinov2``, ``moco_v2``, ``moco_v3``, ``mae``, ``byol``, ``simclr``). With
            ``url=``, ``sha256=``, ``manual=`` and ``hf=`` the file is found (or downloaded) by
            :func:`uda.models.weights.resolve_weights`: the path, ``$UDA_WEIGHTS``, the torch
            hub / Hugging Face caches, then the URL (docs/weights.md). The report is logged and
            kept in ``checkpoint_report``.
        freeze: Parameters that do not train (``requires_grad=False``; their BatchNorm layers
            stay in eval mode, so running statistics do not move): ``dict(encoder=True)``
            (linear probe: only decoder and heads train), ``dict(stages=N)`` (the stem and the
            first N encoder stages, mmseg ResNet ``frozen_stages``; stage numbers from
            :func:`uda.models.encoder_stages.encoder_stage_ids`), ``dict(patterns=[regex,
            ...])`` (parameter names of this segmentor, e.g. ``'net.encoder.layer1'``).
        train_only: The inverse of ``freeze``: only these parameters train, every other one is
            frozen as by ``freeze`` (:func:`uda.models.trainable.train_only_names`): a list of
            name patterns, or ``dict(norm=True, patterns=[...])`` (``norm``: the affine
            parameters of every normalisation layer, TENT's choice).
        insertions: Modules run at named places of the forward pass, by name
            (:mod:`uda.models.insertions`): ``dict(background=dict(type='ConstantLogit',
            index=0, value=1.0), gate=dict(type='ShallowGate', psi=0.3, in_index=2,
            channels=256))`` (single-stage CAM's constant background and stochastic gate), or
            any registered :class:`~uda.models.insertions.SegmentorInsertion` (adapters,
            prompt tokens). Checkpoint keys ``insertions.<name>.*``.
        constant_logit: Deprecated: ``insertions=dict(background=dict(type='ConstantLogit',
            ...))``; translated, with a warning.
        stochastic_gate: Deprecated: ``insertions=dict(gate=dict(type='ShallowGate', ...))``;
            translated, with a warning.
        activation_checkpointing: Recompute the encoder's activations in the backward pass
            instead of keeping them (timm ``set_grad_checkpointing``; smp ResNet stages, MiT
            blocks: :func:`uda.models.checkpointing.enable_activation_checkpointing`): less
            memory for more compute, same gradients and BatchNorm statistics.
        **smp_kwargs: Passed to ``smp.create_model`` (e.g. ``decoder_channels``; ``aux_params``
            builds head ``cls``).
    """

    def __init__(
        self,
        arch: str = 'Unet',
        encoder_name: str = 'resnet18',
        encoder_weights: Optional[str] = None,
        num_classes: int = 19,
        in_channels: int = 3,
        aux_head: Optional[dict] = None,
        align_corners: bool = False,
        encoder_kwargs: Optional[dict] = None,
        encoder_checkpoint: Optional[dict] = None,
        freeze: Optional[dict] = None,
        insertions: Optional[dict] = None,
        constant_logit: Optional[dict] = None,
        stochastic_gate: Optional[dict] = None,
        train_only: Optional[Union[list, dict]] = None,
        activation_checkpointing: bool = False,
        **smp_kwargs: Any,
    ) -> None:
        super().__init__()
        model_class = smp.MODEL_ARCHITECTURES_MAPPING.get(arch.lower())
        if model_class is None:
            raise ValueError(
                f'SMPSegmentor: unknown arch {arch!r}; smp offers '
                f'{sorted(smp.MODEL_ARCHITECTURES_MAPPING)}.'
            )
        # smp models swallow unknown keyword arguments (**kwargs); a typo in a config would be
        # ignored silently, so check them against the architecture's signature.
        known = set(inspect.signature(model_class.__init__).parameters) - {'self', 'kwargs'}
        unknown = sorted(set(smp_kwargs) - known)
        if unknown:
            raise ValueError(
                f'SMPSegmentor(arch={arch!r}): unknown argument(s) {unknown}. '
                f'{model_class.__name__} accepts {sorted(known)}.'
            )
        timm_kwargs = dict(encoder_kwargs or {})
        if timm_kwargs and not encoder_name.startswith('tu-'):
            raise ValueError(
                f'SMPSegmentor: encoder_kwargs={timm_kwargs} only apply to timm encoders '
                f"('tu-' names); {encoder_name!r} is an smp encoder. Drop encoder_kwargs or use "
                f"encoder_name='tu-...'."
            )
        if arch.lower() == 'dpt':
            timm_kwargs.setdefault('dynamic_img_size', True)
        built = self._build_insertions(
            insertions, dict(constant_logit=constant_logit, stochastic_gate=stochastic_gate)
        )
        try:
            self.net = smp.create_model(
                arch,
                encoder_name=encoder_name,
                encoder_weights=encoder_weights,
                in_channels=in_channels,
                classes=num_classes - sum(m.removed_classes for m in built.values()),
                **smp_kwargs,
                **timm_kwargs,
            )
        except (KeyError, ValueError, TypeError) as err:
            hint = ''
            if 'downsampling pattern' in str(err) and 'vit' in encoder_name:
                hint = (
                    " A plain ViT gives every stage at one stride: use arch='DPT' (smp's "
                    'dense decoder for ViTs), or a hierarchical encoder (tu-swin_*, mit_b*).'
                )
            raise ValueError(
                f'SMPSegmentor(arch={arch!r}, encoder_name={encoder_name!r}): {err}{hint} '
                'See segmentation_models_pytorch docs for valid arch/encoder names '
                'and arguments.'
            ) from err
        except OSError as err:  # the hub download of encoder_weights (offline: after retries)
            if encoder_weights is None:
                raise
            raise hub_weights_error(encoder_name, encoder_weights, err) from err
        self.arch, self.encoder_name = arch, encoder_name
        self._vit = isinstance(self.net.encoder, TimmViTEncoder)
        if self._vit:
            self._check_vit(encoder_name)
        self.num_classes = num_classes
        self.align_corners = bool(align_corners)
        self.heads = nn.ModuleDict()
        self.aux_in_index: Optional[int] = None
        if aux_head is not None:
            self.aux_in_index = int(aux_head.get('in_index', -2))
            in_ch = self.net.encoder.out_channels[self.aux_in_index]
            self.heads['aux'] = build_aux_head(aux_head, in_ch, num_classes)
        # smp builds its classification head inside the model (``aux_params``); it moves here so
        # that it is trained through ``head('cls', ...)`` and its weights live in one place.
        cls_head = getattr(self.net, 'classification_head', None)
        if cls_head is not None:
            self.net.classification_head = None
            self.heads['cls'] = cls_head
        # Registered here, after the heads (where CAM's gate was), so parameter order and
        # the optimiser states of older checkpoints stay as they were.
        self.insertions = nn.ModuleDict(built)
        for insertion in self._inserted():
            insertion.attach(self)
        self._register_load_state_dict_pre_hook(self._legacy_insertion_keys)
        self.checkpoint_report: Optional[EncoderLoadReport] = None
        if encoder_checkpoint is not None:
            ckpt = dict(encoder_checkpoint)
            if 'file' not in ckpt:
                raise ValueError(
                    "segmentor.encoder_checkpoint needs file=<path>, e.g. dict(file='dino.pth', "
                    "layout='auto')."
                )
            allowed = {'file', 'layout', 'min_matched', 'checkpoint_key', 'revise_keys'}
            unknown = sorted(set(ckpt) - allowed - set(SOURCE_KEYS))
            if unknown:
                raise ValueError(
                    f'segmentor.encoder_checkpoint: unknown key(s) {unknown}; it accepts '
                    f'{sorted(allowed | set(SOURCE_KEYS))}.'
                )
            self.checkpoint_report = load_encoder_checkpoint(
                self.net.encoder, **resolve_encoder_checkpoint(ckpt)
            )
        self.frozen_names: list[str] = self._freeze(freeze) if freeze else []
        if train_only is not None:
            frozen = set(self.frozen_names) | set(apply_train_only(self, train_only))
            self.frozen_names = sorted(frozen)
        self.checkpointed: list[str] = []
        if activation_checkpointing:
            self.checkpointed = enable_activation_checkpointing(self.net.encoder)

    def _check_vit(self, encoder_name: str) -> None:
        """Drop what a ViT encoder never runs, and refuse patch sizes DPT cannot decode."""
        encoder = self.net.encoder
        # smp's TimmViTEncoder reads block outputs without the final norm and never runs the
        # classifier; timm prunes both, so they neither take gradients (DDP) nor count as
        # encoder weights a checkpoint must fill.
        encoder.model.prune_intermediate_layers(
            encoder._output_indices, prune_norm=True, prune_head=True
        )
        strides = list(encoder.output_strides)
        if self.arch.lower() == 'dpt' and any(s & (s - 1) for s in strides):
            raise ValueError(
                f"SMPSegmentor: {encoder_name} has patch size {strides[0]}; smp's DPT decoder "
                'resizes features by powers of two and needs a power-of-two patch. Set '
                'encoder_kwargs=dict(patch_size=16): a DINOv2 (patch 14) checkpoint then loads '
                "through timm's patch-embedding resampling."
            )

    def _freeze(self, freeze: dict) -> list[str]:
        """Set ``requires_grad=False`` on the parameters ``freeze`` names; return their names."""
        allowed = {'encoder', 'stages', 'patterns'}
        unknown = sorted(set(freeze) - allowed)
        if unknown:
            raise ValueError(
                f'segmentor.freeze: unknown key(s) {unknown}; use encoder=True, stages=N or '
                "patterns=['net.encoder.layer1', ...]."
            )
        names: set[str] = set()
        enc = 'net.encoder.'
        if freeze.get('encoder', False):
            names |= {enc + n for n, _ in self.net.encoder.named_parameters()}
        stages = int(freeze.get('stages', -1))
        if stages >= 0:
            ids, _ = encoder_stage_ids(self.net.encoder)
            names |= {enc + n for n, i in ids.items() if i <= stages}
        all_names = [n for n, _ in self.named_parameters()]
        for pattern in freeze.get('patterns', ()):
            hit = {n for n in all_names if re.search(pattern, n)}
            if not hit:
                raise ValueError(
                    f'segmentor.freeze.patterns: {pattern!r} matches no parameter; names '
                    f'look like {all_names[:3]}.'
                )
            names |= hit
        params = dict(self.named_parameters())
        for n in names:
            params[n].requires_grad_(False)
        return sorted(names)

    def _frozen_norms(self) -> list[nn.Module]:
        """BatchNorm layers whose affine parameters are all frozen (eval: fixed statistics).

        Found anew each call, so a SyncBatchNorm conversion after building is followed."""
        if not self.frozen_names:
            return []
        return [
            m
            for m in self.modules()
            if isinstance(m, _BatchNorm)
            and any(True for _ in m.parameters())
            and not any(p.requires_grad for p in m.parameters())
        ]

    def train(self, mode: bool = True) -> 'SMPSegmentor':
        """Train/eval mode; BatchNorm layers of frozen parts always stay in eval mode."""
        super().train(mode)
        for m in self._frozen_norms():
            m.eval()
        return self

    @staticmethod
    def _build_insertions(
        insertions: Optional[dict], legacy: dict[str, Optional[dict]]
    ) -> dict[str, SegmentorInsertion]:
        """The insertion modules by name; the deprecated ``constant_logit`` /
        ``stochastic_gate`` arguments become insertions, with one warning each."""
        cfgs = dict(insertions or {})
        for key, cfg in legacy.items():
            if cfg is None:
                continue
            name, type_ = LEGACY_ARGUMENTS[key]
            warnings.warn(
                f'segmentor.{key} is deprecated: use segmentor.insertions=dict({name}=dict('
                f"type='{type_}', ...)) (uda/models/insertions.py); translated.",
                DeprecationWarning,
                stacklevel=3,
            )
            if name in cfgs:
                raise ValueError(
                    f"segmentor.{key} and segmentor.insertions['{name}'] both given; keep "
                    'the insertion.'
                )
            cfgs[name] = dict(cfg, type=type_)
        built: dict[str, SegmentorInsertion] = {}
        for name, cfg in cfgs.items():
            module = cfg if isinstance(cfg, nn.Module) else MODELS.build(cfg)
            if not isinstance(module, SegmentorInsertion):
                raise TypeError(
                    f"segmentor.insertions['{name}'] is a {type(module).__name__}, not a "
                    'SegmentorInsertion (uda/models/insertions.py).'
                )
            built[name] = module
        return built

    def _legacy_insertion_keys(self, state_dict: dict, prefix: str, *args: Any) -> None:
        """Checkpoints from before insertions keep CAM's gate at ``gci.*``: move those keys to
        the ``ShallowGate`` insertion (``insertions.<name>.gci.*``)."""
        from uda.models.insertions import ShallowGate

        names = [n for n, m in self.insertions.items() if isinstance(m, ShallowGate)]
        old = prefix + 'gci.'
        if not names:
            return
        for key in [k for k in state_dict if k.startswith(old)]:
            state_dict[f'{prefix}insertions.{names[0]}.gci.{key[len(old) :]}'] = state_dict.pop(key)

    @property
    def constant_logit(self) -> Optional[tuple[int, float]]:
        """``(index, value)`` of the :class:`ConstantLogit` insertion, if any (CAM's terms
        check it against their background class)."""
        for module in self.insertions.values():
            if isinstance(module, ConstantLogit):
                return module.index, module.value
        return None

    @property
    def encoder_channels(self) -> list[int]:
        return list(self.net.encoder.out_channels)

    def extract_feat(self, x: Tensor) -> list[Tensor]:
        """Encoder stages: a list of [B, C_i, H_i, W_i] maps (``encoder_channels``); for a ViT
        an :class:`EncoderFeatures` that also carries the prefix tokens."""
        if self._vit:
            # DPT's last stage halves the patch grid and fusion doubles it back, so the grid
            # must be even: sides divisible by 2 x patch (32 for patch 16).
            div = 2 * self.net.encoder.output_stride
            if self.arch.lower() == 'dpt' and (x.shape[-2] % div or x.shape[-1] % div):
                raise ValueError(
                    f'DPT on {self.encoder_name} needs input sides divisible by {div}; got '
                    f'{tuple(x.shape[-2:])}. Set data_preprocessor.size_divisor={div} (and crop '
                    f'sizes that are multiples of {div}).'
                )
            maps, tokens = self.net.encoder(x)
            feats = EncoderFeatures(maps)
            feats.prefix_tokens = list(tokens)
            return self._inserted_features(feats)
        return self._inserted_features(list(self.net.encoder(x)))

    def _inserted(self) -> list[SegmentorInsertion]:
        """The insertions in config order (typed: ``ModuleDict`` values are plain modules)."""
        return [m for m in self.insertions.values() if isinstance(m, SegmentorInsertion)]

    def _inserted_features(self, features: list[Tensor]) -> list[Tensor]:
        for insertion in self._inserted():
            features = insertion.encoder(features)
        return features

    def _decode(self, features: list[Tensor]) -> tuple[Tensor, Tensor]:
        if self._vit:
            tokens = getattr(features, 'prefix_tokens', None)
            if tokens is None:
                if self.net.encoder.has_prefix_tokens and self._dpt_reads_tokens():
                    raise ValueError(
                        "decode() got a plain list, but this DPT fuses the ViT's class token "
                        "(decoder_readout='cat'/'add'); pass the EncoderFeatures from "
                        'extract_feat (set .prefix_tokens on a new one) or build the segmentor '
                        "with decoder_readout='ignore'."
                    )
                tokens = [None] * len(features)
            decoder = self.net.decoder(list(features), tokens)
        else:
            decoder = self.net.decoder(features)
        for insertion in self._inserted():
            decoder = insertion.decoder(decoder, features)
        logits = self.net.segmentation_head(decoder)
        for insertion in self._inserted():
            logits = insertion.logits(logits)
        return decoder, logits

    def _dpt_reads_tokens(self) -> bool:
        from segmentation_models_pytorch.decoders.dpt.decoder import ReadoutIgnoreBlock

        blocks = getattr(self.net.decoder, 'projection_blocks', [])
        return not all(isinstance(b, ReadoutIgnoreBlock) for b in blocks)

    def decode(self, features: list[Tensor], size: Optional[Size] = None) -> Tensor:
        """Decoder + segmentation head: logits [B, C, h, w], upsampled to ``size`` if given."""
        return resize_logits(self._decode(features)[1], size, self.align_corners)

    def head(self, name: str, features: list[Tensor], size: Optional[Size] = None) -> Tensor:
        """Named head on encoder features.

        ``'aux'``: per-pixel logits [B, C, h, w] on stage ``aux_in_index``, upsampled to
        ``size`` if given. ``'cls'``: image-level logits [B, K] on the last stage.
        """
        if name not in self.heads:
            if name in HEAD_CONFIG:
                raise ValueError(
                    f'SMPSegmentor has no {name!r} head; set {HEAD_CONFIG[name]} in the config.'
                )
            raise ValueError(
                f'SMPSegmentor has no head {name!r}; the heads are '
                + ', '.join(f'{k!r} ({v})' for k, v in HEAD_CONFIG.items())
                + '.'
            )
        if name == 'cls':
            return self.heads['cls'](features[-1])
        assert self.aux_in_index is not None
        aux = self.heads['aux'](features[self.aux_in_index])
        return resize_logits(aux, size, self.align_corners)

    def forward(
        self,
        x: Tensor,
        return_features: bool = False,
        return_aux: bool = False,
        return_cls: bool = False,
    ) -> Union[Tensor, dict[str, Any]]:
        # Fail before the encoder runs when a requested head is missing.
        for flag, name in ((return_aux, 'aux'), (return_cls, 'cls')):
            if flag and name not in self.heads:
                raise ValueError(
                    f'return_{name}=True but the segmentor has no {name!r} head; '
                    f'set {HEAD_CONFIG[name]} in the config.'
                )
        size = x.shape[-2:]
        features = self.extract_feat(x)
        decoder, logits = self._decode(features)
        logits = resize_logits(logits, size, self.align_corners)
        if not (return_features or return_aux or return_cls):
            return logits
        out: dict[str, Any] = dict(logits=logits)
        if return_features:
            out['features'] = features
            out['decoder'] = decoder
        if return_aux:
            out['aux_logits'] = self.head('aux', features, size)
        if return_cls:
            out['cls_logits'] = self.head('cls', features)
        return out
