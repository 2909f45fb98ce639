"""DAFormer / MIC checkpoints (mmseg 0.x): MiT encoder + DAFormer head, student and EMA teacher.

lhoyer/DAFormer@e6f6e04 and lhoyer/MIC@2f932a9 save the whole UDA module through mmcv's
``save_checkpoint``: ``{'meta', 'state_dict', 'optimizer'}`` (``tools/train.py``: ``meta`` with
``CLASSES``, ``PALETTE``, ``exp_name``, ``mmcv_version`` ...). ``state_dict`` holds the student
``model.backbone.*`` / ``model.decode_head.*``, the EMA teacher ``ema_model.*`` and, when the
ImageNet feature distance is on, the frozen ImageNet copy ``imnet_model.*``
(``mmseg/models/uda/dacs.py`` ``DACS.__init__``; MIC ``seg/mmseg/models/uda/dacs.py``).

uda's :class:`~uda.models.DAFormer` keeps the reference's module names, so the conversion is
three prefixes (:data:`STUDENT_RULES`); smp's MiT keeps SegFormer's parameter names
(``patch_embed1.proj``, ``block1.0.attn.q``, ``norm1`` ...). MIC's released checkpoints are
MIC(HRDA): their ``decode_head.head.*`` / ``decode_head.scale_attention.*`` multi-resolution head
has no uda counterpart and is refused with that reason (docs/networks.md).
"""

from __future__ import annotations

import re
from typing import Any, Optional

from uda.models.layouts.base import (
    CheckpointLayout,
    ConvertedCheckpoint,
    ForeignCheckpointError,
    Preprocessing,
    StateDict,
    rename,
    tensor_items,
    with_prefix,
)
from uda.registry import CHECKPOINT_LAYOUTS

# (stage-1 width, blocks per stage) -> smp encoder name (lhoyer/DAFormer
# mmseg/models/backbones/mix_transformer.py mit_b0 ... mit_b5).
MIT_VARIANTS: dict[tuple[int, tuple[int, ...]], str] = {
    (32, (2, 2, 2, 2)): 'mit_b0',
    (64, (2, 2, 2, 2)): 'mit_b1',
    (64, (3, 4, 6, 3)): 'mit_b2',
    (64, (3, 4, 18, 3)): 'mit_b3',
    (64, (3, 8, 27, 3)): 'mit_b4',
    (64, (3, 6, 40, 3)): 'mit_b5',
}

# mmseg DAFormer module names -> uda SMPSegmentor names, after the ``model.`` / ``ema_model.``
# prefix is removed. The classifier moves to smp's segmentation head.
STUDENT_RULES: list[tuple[str, str]] = [
    (r'^backbone\.', 'net.encoder.'),
    (r'^decode_head\.conv_seg\.', 'net.segmentation_head.conv_seg.'),
    (r'^decode_head\.(embed_layers|fuse_layer)\.', r'net.decoder.\1.'),
]

# The normalisation of every DAFormer / MIC config (configs/_base_/datasets/
# uda_gta_to_cityscapes_512x512.py img_norm_cfg, to_rgb=True); the test pipeline has no Pad.
DAFORMER_PREPROCESSING = Preprocessing(
    'rgb', 255.0, (123.675, 116.28, 103.53), (58.395, 57.12, 57.375), size_divisor=1
)

# UDA-module parts that are not the segmentation network.
IGNORED_PREFIXES = ('imnet_model.', 'mic.')


def _strip_ddp(state: StateDict) -> StateDict:
    return {k[len('module.') :] if k.startswith('module.') else k: v for k, v in state.items()}


def daformer_state(ckpt: Any) -> StateDict:
    """The file's ``state_dict`` as the UDA module's: ``module.`` removed, and a plain mmseg
    ``EncoderDecoder`` file (``backbone.*`` / ``decode_head.*``, e.g. a supervised run
    without ``uda``) read as the student ``model.*``. Empty when it is neither."""
    raw = ckpt.get('state_dict') if isinstance(ckpt, dict) else None
    state = _strip_ddp(tensor_items(raw))
    if 'backbone.patch_embed1.proj.weight' in state and not any(
        k.startswith('model.') for k in state
    ):
        # Only with DAFormer's (or HRDA's) head: SegFormer's own head is no DAFormer file.
        if not any(k.startswith(('decode_head.fuse_layer.', 'decode_head.head.')) for k in state):
            return {}
        state = {f'model.{k}': v for k, v in state.items()}
    return state


def mit_variant(backbone: StateDict) -> str:
    """The smp MiT encoder whose widths and depths fit ``backbone`` (keys without prefix)."""
    width = int(backbone['patch_embed1.proj.weight'].shape[0])
    depths = []
    for stage in range(1, 5):
        ids = {int(m.group(1)) for k in backbone if (m := re.match(rf'block{stage}\.(\d+)\.', k))}
        depths.append(max(ids) + 1 if ids else 0)
    name = MIT_VARIANTS.get((width, tuple(depths)))
    if name is None:
        raise ForeignCheckpointError(
            f'DAFormer layout: the backbone (stage-1 width {width}, blocks {depths}) is no MiT '
            f'variant uda knows ({", ".join(sorted(set(MIT_VARIANTS.values())))}).'
        )
    return name


def daformer_segmentor(student: StateDict) -> dict[str, Any]:
    """The :class:`~uda.models.SMPSegmentor` config that a DAFormer student state dict fits
    (mmseg names, ``model.`` removed): encoder variant, head widths and classes from shapes."""
    backbone = with_prefix(student, 'backbone.')
    head = with_prefix(student, 'decode_head.')
    if 'patch_embed1.proj.weight' not in backbone:
        raise ForeignCheckpointError(
            'DAFormer layout: the backbone is not a Mix Transformer (no '
            f'model.backbone.patch_embed1.proj.weight; e.g. {sorted(backbone)[:3]}). uda converts '
            "DAFormer's MiT networks only; DAFormer's DeepLab-v2 runs have no layout here."
        )
    if any(k.startswith(('head.', 'scale_attention.')) for k in head):
        raise ForeignCheckpointError(
            'DAFormer layout: this is an HRDA checkpoint (model.decode_head.scale_attention.* / '
            'model.decode_head.head.*, e.g. MIC(HRDA) latest.pth). uda has no HRDA '
            'multi-resolution head (docs/networks.md), so its outputs cannot be reproduced.'
        )
    fusion = with_prefix(head, 'fuse_layer.')
    branches = sorted({int(k.split('.')[1]) for k in fusion if k.startswith('aspp_modules.')})
    sep = all(f'aspp_modules.{i}.depthwise_conv.conv.weight' in fusion for i in branches if i > 0)
    if len(branches) != 4 or 'aspp_modules.0.conv.weight' not in fusion or not sep:
        raise ForeignCheckpointError(
            'DAFormer layout: the head is not the DAFormer head with separable ASPP fusion '
            '(daformer_sepaspp_mitb5.py: decode_head.fuse_layer.aspp_modules.0-3, '
            f'depthwise_conv/pointwise_conv); found e.g. {sorted(fusion)[:4]}. The ablation heads '
            'of DAFormer Tab. 7 (conv1, aspp without sep, bottleneck) have no uda network.'
        )
    if 'conv_seg.weight' not in head or 'embed_layers.0.proj.weight' not in head:
        raise ForeignCheckpointError(
            'DAFormer layout: no decode_head.conv_seg.weight / embed_layers.0.proj.weight in '
            f'the student (e.g. {sorted(head)[:4]}).'
        )
    cfg: dict[str, Any] = dict(
        type='SMPSegmentor',
        arch='DAFormer',
        encoder_name=mit_variant(backbone),
        encoder_weights=None,
        num_classes=int(head['conv_seg.weight'].shape[0]),
        align_corners=False,  # DAFormerHead asserts it
    )
    embed = int(head['embed_layers.0.proj.weight'].shape[0])
    channels = int(head['conv_seg.weight'].shape[1])
    if embed != 256:
        cfg['decoder_embed_dim'] = embed
    if channels != 256:
        cfg['decoder_channels'] = channels
    return cfg


def convert_daformer_state(
    state: StateDict,
) -> tuple[StateDict, Optional[StateDict], list[str], list[str]]:
    """Split and rename a DAFormer / MIC ``state_dict`` (:func:`daformer_state`).

    Returns:
        ``(student, teacher or None, ignored keys, unmapped keys)`` with uda's names
        (``net.encoder.*``, ``net.decoder.*``, ``net.segmentation_head.*``).
    """
    ignored = [k for k in state if k.startswith(IGNORED_PREFIXES)]
    student, unmapped_s = rename(with_prefix(state, 'model.'), STUDENT_RULES)
    unmapped = [f'model.{k}' for k in unmapped_s]
    teacher: Optional[StateDict] = None
    ema = with_prefix(state, 'ema_model.')
    if ema:
        teacher, unmapped_t = rename(ema, STUDENT_RULES)
        unmapped += [f'ema_model.{k}' for k in unmapped_t]
    known = ('model.', 'ema_model.') + IGNORED_PREFIXES
    unmapped += [k for k in state if not k.startswith(known)]
    return student, teacher, ignored, unmapped


@CHECKPOINT_LAYOUTS.register_module()
class DAFormer(CheckpointLayout):
    """DAFormer / MIC ``latest.pth`` (mmseg 0.x): MiT + DAFormer head, student and EMA teacher.

    Reads ``state_dict``: ``model.*`` (student), ``ema_model.*`` (teacher), ignores
    ``imnet_model.*`` (the frozen ImageNet copy of the feature distance) and the optimiser;
    ``meta['CLASSES']`` and the training ``iter`` go to the converted meta. Preprocessing: RGB,
    0-255, mean [123.675, 116.28, 103.53], std [58.395, 57.12, 57.375].
    """

    repository = 'lhoyer/DAFormer'
    source_file = (
        'mmseg/models/uda/dacs.py (DACS: model, ema_model, imnet_model); tools/train.py (meta); '
        'lhoyer/MIC seg/mmseg/models/uda/dacs.py'
    )
    files = 'latest.pth / iter_40000.pth (e.g. 211108_1622_gta2cs_daformer_s0_7f24c.tar.gz)'

    def matches(self, ckpt: Any) -> bool:
        keys = daformer_state(ckpt)
        return 'model.backbone.patch_embed1.proj.weight' in keys and any(
            k.startswith('model.decode_head.') for k in keys
        )

    def convert(self, ckpt: Any) -> ConvertedCheckpoint:
        state = daformer_state(ckpt)
        student, teacher, ignored, unmapped = convert_daformer_state(state)
        segmentor = daformer_segmentor(with_prefix(state, 'model.'))
        meta_in = ckpt.get('meta') if isinstance(ckpt.get('meta'), dict) else {}
        meta = {k: meta_in[k] for k in ('CLASSES', 'exp_name', 'iter', 'epoch') if k in meta_in}
        ignored += [k for k in ckpt if k not in ('state_dict', 'meta')]
        return ConvertedCheckpoint(
            layout=self.name,
            state_dict=student,
            segmentor=segmentor,
            preprocessing=DAFORMER_PREPROCESSING,
            teacher_state_dict=teacher,
            meta=meta,
            ignored=ignored,
            unmapped=unmapped,
        )
