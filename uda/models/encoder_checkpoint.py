"""Load a self-supervised checkpoint file into a segmentor's encoder, and say what loaded.

Users hold DINO / DINOv2 / MoCo / MAE / BYOL / SimCLR files whose keys wrap the backbone in
the training code's modules (``module.encoder_q.``, ``teacher`` -> ``backbone.``); loaded
with ``strict=False`` and no check, such a file silently leaves the network random (DAFormer
issue #91: 26 mIoU). Here each *layout* names where the backbone sits in the file (a container
key and prefixes, as mmengine ``revise_keys``) and which heads to leave out; timm's ViT
``checkpoint_filter_fn`` then converts DINOv2 keys (``mask_token``, register tokens, SwiGLU
``w12``), resamples position embeddings to the model's grid and patch embeddings to its patch
size, and the encoder's own ``load_state_dict`` (smp drops classifier keys) loads the result.
Every load logs loaded / missing / unexpected counts with a few names, and fails with the file,
the layout and the fix when fewer than ``min_matched`` of the encoder's weights were found or a
shape does not fit.

Layouts, with the file that saves or reads them:

====================  ======================================================================
``uda``               ``{'state_dict': segmentor.net.encoder.state_dict()}`` (tools/pretrain.py);
                      ``student.net.encoder.`` of a tools/train.py checkpoint
``timm``              timm ``train.py`` checkpoints (``state_dict``) and bare timm / torchvision
                      files
``dino``              facebookresearch/dino main_dino.py ``save_dict`` (``teacher`` /
                      ``student``, ``module.`` + ``backbone.``; utils.py
                      ``load_pretrained_weights`` strips both); hub files are bare
``dinov2``            facebookresearch/dinov2 dinov2/train/train.py ``do_test``
                      (``{'teacher': ...}``, ``backbone.``, ``blocks.<chunk>.<i>`` when
                      ``block_chunks`` > 0); hub files bare (``mask_token``,
                      ``register_tokens``, patch 14)
``moco_v2``           facebookresearch/moco main_moco.py ``state_dict``, read by
                      main_lincls.py: ``module.encoder_q.``, drop ``fc``
``moco_v3``           facebookresearch/moco-v3 main_moco.py ``state_dict``, read by
                      main_lincls.py: ``module.base_encoder.``, drop ``head`` / ``fc``
``mae``               facebookresearch/mae main_finetune.py reads ``checkpoint['model']``,
                      drops ``head``; pretraining files also hold ``decoder_*`` and
                      ``mask_token`` (models_mae.py), left out here
``torchvision``       ImageNet classifier files saved as a bare ``state_dict``: torchvision
                      ``resnet101-5d3b4d8f.pth`` (visinf/da-sac README.md), SegFormer's
                      ``mit_b5.pth`` (lhoyer/DAFormer README.md), UniMatch's
                      ``resnet101.pth`` (LiheYoung/UniMatch model/backbone/resnet.py loads it
                      with strict=False), smp-hub ``model.safetensors``; drop the classifier
``deeplab_caffe``     the Caffe DeepLab-v2 inits: AdaptSegNet's COCO
                      ``DeepLab_resnet_pretrained_init-f81d91e8.pth`` (``Scale.`` prefix),
                      ADVENT's ``DeepLab_resnet_pretrained_imagenet.pth`` (the loader drops key
                      part 0, valeoai/ADVENT advent/scripts/train.py), DACS's
                      ``resnet101COCO-41f33a49.pth`` (bare names, vikolss/DACS trainUDA.py);
                      the COCO / ImageNet classifier ``layer5`` is left out
``byol``, ``simclr``  vturrisi/solo-learn main_linear.py: Lightning ``state_dict`` with
                      ``backbone.`` (older files ``encoder.``), also mmpretrain's
                      ``backbone.``; Spijkervet/SimCLR and Lightning-Universe/lightning-bolts
                      SimCLR keep the ResNet as ``encoder.``; lucidrains/byol-pytorch users
                      save the bare ResNet
====================  ======================================================================
"""

from __future__ import annotations

import argparse
import os.path as osp
import re
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.logging import print_log
from torch import Tensor

StateDict = dict[str, Tensor]


@dataclass(frozen=True)
class Layout:
    """Where a training framework keeps the backbone in its checkpoint file.

    Args:
        containers: Checkpoint keys tried in order for the weights dict; the file itself when
            none is present (hub files are bare state dicts).
        prefixes: Alternative key prefixes of the backbone inside that dict; keys without the
            chosen prefix are not the backbone (a momentum encoder, a queue, a projector).
        drop: Regexes of keys, after the prefix, that are heads, not encoder weights.
        revise_keys: mmengine-style ``(regex, replacement)`` pairs applied after the prefix.
    """

    containers: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ('',)
    drop: tuple[str, ...] = ()
    revise_keys: tuple[tuple[str, str], ...] = ()


LAYOUTS: dict[str, Layout] = {
    # tools/pretrain.py files; also a whole training checkpoint of tools/train.py (the
    # student's encoder) or a saved segmentor.
    'uda': Layout(
        containers=('state_dict',), prefixes=('', 'student.net.encoder.', 'net.encoder.')
    ),
    'timm': Layout(
        containers=('state_dict', 'model'),
        prefixes=('', 'module.'),
        drop=(r'^fc\.', r'^head\.', r'^classifier\.'),
    ),
    'dino': Layout(
        containers=('teacher',),
        prefixes=('module.backbone.', 'backbone.', 'module.', ''),
        drop=(r'^head\.', r'^fc\.'),
    ),
    'dinov2': Layout(
        containers=('teacher', 'model'),
        prefixes=('module.backbone.', 'backbone.', ''),
        # BlockChunk keeps the global block index: blocks.<chunk>.<i> -> blocks.<i>
        # (facebookresearch/dinov2 dinov2/models/vision_transformer.py, chunked_blocks).
        revise_keys=((r'^blocks\.\d+\.(\d+)\.', r'blocks.\1.'),),
        drop=(r'^head\.',),
    ),
    # A bare ImageNet classifier state dict (torchvision ResNet / VGG, SegFormer MiT, UniMatch's
    # deep-stem ResNet, smp-hub encoders): the encoder's own names; only the classifier goes.
    'torchvision': Layout(drop=(r'^fc\.', r'^head\.', r'^classifier\.')),
    # Caffe DeepLab-v2 ResNet-101 inits: ResNet names (conv1, bn1, layer1-4, downsample.0/1)
    # under one wrapper word (``Scale.``) or none; ``layer5`` is the COCO / ImageNet classifier.
    # (The Caffe network strides the 1x1 conv of each first bottleneck; the weights' shapes
    # are the torchvision ones, so they load into smp's ResNet-101 either way.)
    'deeplab_caffe': Layout(
        prefixes=('', 'module.'),
        revise_keys=((r'^[A-Za-z_]\w*\.(?=(conv1|bn1|layer\d)\.)', ''),),
        drop=(r'^layer[56]\.', r'^fc\.'),
    ),
    'moco_v2': Layout(
        containers=('state_dict',), prefixes=('module.encoder_q.', 'encoder_q.'), drop=(r'^fc\.',)
    ),
    'moco_v3': Layout(
        containers=('state_dict',),
        prefixes=('module.base_encoder.', 'base_encoder.'),
        drop=(r'^head\.', r'^fc\.'),
    ),
    'mae': Layout(
        containers=('model',),
        prefixes=('', 'module.'),
        drop=(r'^head\.', r'^decoder', r'^mask_token$'),
    ),
    'byol': Layout(
        containers=('state_dict',),
        prefixes=('module.backbone.', 'backbone.', 'online_encoder.net.', ''),
        drop=(r'^fc\.',),
    ),
    'simclr': Layout(
        containers=('state_dict',),
        prefixes=('module.backbone.', 'backbone.', 'module.encoder.', 'encoder.', ''),
        drop=(r'^fc\.',),
    ),
}
# 'auto' tries them in this order and keeps the one that fills most encoder weights (ties:
# the earlier one, so a uda file is read as 'uda').
AUTO_ORDER = (
    'uda',
    'timm',
    'dino',
    'dinov2',
    'mae',
    'moco_v3',
    'moco_v2',
    'byol',
    'simclr',
    'torchvision',
    'deeplab_caffe',
)


@dataclass
class EncoderLoadReport:
    """What one load did: counts and names, for the log and for tests."""

    file: str
    layout: str
    container: str
    prefix: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    share: float = 0.0

    def summary(self) -> str:
        def few(names: list[str]) -> str:
            return '' if not names else ' e.g. ' + ', '.join(names[:4])

        return (
            f'encoder checkpoint {self.file} (layout {self.layout!r}, weights '
            f'{self.container or "file"}, prefix {self.prefix!r}): loaded {len(self.loaded)} '
            f'({self.share:.0%} of the encoder), missing {len(self.missing)}'
            f'{few(self.missing)}; unexpected {len(self.unexpected)}{few(self.unexpected)}; '
            f'left out as heads {len(self.dropped)}{few(self.dropped)}'
        )


def read_checkpoint(file: str) -> Any:
    """Read ``file`` through mmengine's ``_load_checkpoint`` (uda's weights-only loader).

    DINO and MAE store their ``argparse.Namespace`` of arguments next to the weights; it is a
    plain attribute container, so it is allowed too. ``.safetensors`` files are read with
    safetensors.
    """
    if not osp.isfile(osp.expanduser(file)):
        raise FileNotFoundError(
            f'encoder_checkpoint.file={file!r} does not exist; give the path of the '
            'self-supervised checkpoint (.pth / .safetensors).'
        )
    if file.endswith('.safetensors'):
        from safetensors.torch import load_file

        return load_file(osp.expanduser(file), device='cpu')
    from mmengine.runner.checkpoint import _load_checkpoint

    from uda.engine.checkpoint import install_checkpoint_loader

    install_checkpoint_loader()  # idempotent: mmengine's local loader is uda's safe one
    with torch.serialization.safe_globals([argparse.Namespace]):
        return _load_checkpoint(osp.expanduser(file), map_location='cpu')


def _tensors(d: Any) -> StateDict:
    return {k: v for k, v in d.items() if isinstance(v, Tensor)} if isinstance(d, dict) else {}


def _revise(sd: StateDict, revise_keys: Sequence[tuple[str, str]]) -> StateDict:
    # The key revision of mmengine's ``_load_checkpoint_to_model`` (mmengine/runner/checkpoint.py).
    for p, r in revise_keys:
        sd = {re.sub(p, r, k): v for k, v in sd.items()}
    return sd


def _is_timm_vit(module: nn.Module) -> bool:
    from timm.models.vision_transformer import VisionTransformer

    return isinstance(module, VisionTransformer)


def load_target(encoder: nn.Module, layout: str) -> nn.Module:
    """The module whose keys a layout's names follow: the timm model inside a ``tu-`` encoder
    (SSL files name timm / torchvision modules), or the encoder itself (smp encoders, 'uda')."""
    inner = getattr(encoder, 'model', None)
    if layout != 'uda' and isinstance(inner, nn.Module):
        return inner
    return encoder


def _candidate(
    raw: Any,
    layout: Layout,
    container: str,
    prefix: str,
    target: nn.Module,
    revise_keys: Sequence[tuple[str, str]],
) -> tuple[StateDict, list[str]]:
    """One reading of the file: (state dict in the target's names, keys left out as heads)."""
    sd = _tensors(raw[container]) if container else _tensors(raw)
    if prefix:
        sd = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
    sd = _revise(sd, [*layout.revise_keys, *revise_keys])
    dropped = sorted(k for k in sd if any(re.search(p, k) for p in layout.drop))
    sd = {k: v for k, v in sd.items() if k not in set(dropped)}
    if sd and _is_timm_vit(target):
        from timm.models.vision_transformer import checkpoint_filter_fn

        # DINOv2 conversion, position-embedding resampling to the model's grid, patch
        # embedding resampling to its patch size (huggingface/pytorch-image-models
        # timm/models/vision_transformer.py checkpoint_filter_fn).
        sd = checkpoint_filter_fn(sd, target)  # type: ignore[arg-type]
    return sd, dropped


def _weight_keys(target: nn.Module) -> list[str]:
    # num_batches_tracked is a counter, not a weight: files from other frameworks may lack it.
    return [k for k in target.state_dict() if not k.endswith('num_batches_tracked')]


def _score(sd: StateDict, target_keys: set[str]) -> tuple[int, int]:
    # Most encoder weights filled first, then fewest keys left over (a layout that knows the
    # file's heads beats one that does not).
    hits = sum(1 for k in sd if k in target_keys)
    return hits, hits - len(sd)


def load_encoder_checkpoint(
    encoder: nn.Module,
    file: str,
    layout: str = 'auto',
    min_matched: float = 0.9,
    checkpoint_key: Optional[str] = None,
    revise_keys: Sequence[tuple[str, str]] = (),
) -> EncoderLoadReport:
    """Load the backbone weights of ``file`` into ``encoder`` (``segmentor.net.encoder``).

    Args:
        encoder: An smp encoder (``resnet18``, ``mit_b0`` ...) or a ``tu-`` timm encoder (a
            CNN or a ViT; its weights follow the timm model's names).
        file: Checkpoint path (``.pth`` / ``.pt`` / ``.ckpt`` / ``.safetensors``).
        layout: One of :data:`LAYOUTS` or ``'auto'`` (every layout is tried; the one that
            fills most of the encoder wins).
        min_matched: Share of the encoder's weights the file must fill, else an error.
        checkpoint_key: The weights' container in the file, overriding the layout's (e.g.
            ``'student'`` for a DINO file; ``''`` for the file itself).
        revise_keys: Extra mmengine-style ``(regex, replacement)`` key revisions, after the
            layout's prefix, for files no layout covers.

    Returns:
        The :class:`EncoderLoadReport` (also logged).

    Raises:
        ValueError: Unknown layout; fewer than ``min_matched`` of the encoder's weights found;
            a weight of the wrong shape.
    """
    if layout != 'auto' and layout not in LAYOUTS:
        raise ValueError(
            f'encoder_checkpoint.layout={layout!r} is unknown; use one of {["auto", *LAYOUTS]}.'
        )
    if not 0.0 < float(min_matched) <= 1.0:
        raise ValueError(f'encoder_checkpoint.min_matched={min_matched} must be in (0, 1].')
    raw = read_checkpoint(file)
    names = list(AUTO_ORDER) if layout == 'auto' else [layout]
    best: Optional[tuple[tuple[int, int], str, str, str, StateDict, list[str]]] = None
    for name in names:
        lay = LAYOUTS[name]
        target = load_target(encoder, name)
        target_keys = set(target.state_dict())
        if checkpoint_key is not None:
            containers = [checkpoint_key]
        else:
            containers = [c for c in lay.containers if isinstance(raw, dict) and c in raw]
            containers = containers[:1] or ['']
        for container in containers:
            if container and not (isinstance(raw, dict) and isinstance(raw.get(container), dict)):
                held = sorted(raw)[:8] if isinstance(raw, dict) else type(raw).__name__
                raise ValueError(
                    f'encoder_checkpoint: {file} has no weights under '
                    f'checkpoint_key={container!r}; it holds {held}.'
                )
            for prefix in lay.prefixes:
                try:
                    sd, dropped = _candidate(raw, lay, container, prefix, target, revise_keys)
                except (RuntimeError, ValueError, KeyError, IndexError) as err:
                    if layout != 'auto':
                        raise ValueError(
                            f'encoder_checkpoint {file} (layout {name!r}, prefix '
                            f'{prefix!r}): timm could not convert it: {err}'
                        ) from err
                    continue
                score = _score(sd, target_keys)
                if best is None or score > best[0]:
                    best = (score, name, container, prefix, sd, dropped)
    assert best is not None
    _, name, container, prefix, sd, dropped = best
    target = load_target(encoder, name)
    own = target.state_dict()
    weights = _weight_keys(target)
    loaded = [k for k in weights if k in sd]
    report = EncoderLoadReport(
        file=file,
        layout=name if layout != 'auto' else f'auto -> {name}',
        container=container,
        prefix=prefix,
        loaded=loaded,
        missing=[k for k in weights if k not in sd],
        unexpected=sorted(k for k in sd if k not in own),
        dropped=dropped,
        share=len(loaded) / max(len(weights), 1),
    )
    shapes = [
        f'{k}: file {list(sd[k].shape)} vs encoder {list(own[k].shape)}'
        for k in loaded
        if sd[k].shape != own[k].shape
    ]
    if shapes:
        raise ValueError(
            f'{report.summary()}\n{len(shapes)} weight(s) have the wrong shape, e.g. '
            + '; '.join(shapes[:3])
            + '. The file was trained with another encoder: set segmentor.encoder_name (and '
            'encoder_kwargs, e.g. patch_size / embed_dim) to the network it was trained with.'
        )
    if report.share < float(min_matched):
        some = sorted(_tensors(raw[container]) if container else _tensors(raw))[:5]
        raise ValueError(
            f'{report.summary()}\nOnly {report.share:.0%} of the encoder weights were found '
            f'(min_matched={min_matched}); nothing of this file would be trusted. The file '
            f'holds keys like {some}; the encoder expects keys like {weights[:3]}. Fix: set '
            f'encoder_checkpoint.layout to the framework that wrote it ({list(LAYOUTS)}), '
            'checkpoint_key to its weights entry, or revise_keys=[(regex, replacement)] to '
            'map its names; check that segmentor.encoder_name is the network it was trained '
            'with.'
        )
    # The encoder's own load_state_dict (smp's drops classifier keys and returns nothing).
    target.load_state_dict({k: sd[k] for k in loaded} | _counters(sd, own), strict=False)
    after = target.state_dict()
    left = [k for k in loaded if not torch.equal(after[k], sd[k].to(after[k].dtype))]
    if left:
        raise RuntimeError(f'{report.summary()}\nload_state_dict did not take {left[:5]}.')
    print_log(report.summary(), logger='current')
    return report


def _counters(sd: StateDict, own: StateDict) -> StateDict:
    return {k: v for k, v in sd.items() if k.endswith('num_batches_tracked') and k in own}
