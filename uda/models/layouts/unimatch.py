"""UniMatch checkpoints: DeepLab-v3+ on the deep-stem ResNet (LiheYoung/UniMatch).

``unimatch.py`` (and ``fixmatch.py``, ``supervised.py``) save ``{'model', 'optimizer', 'epoch',
'previous_best'}`` as ``latest.pth`` / ``best.pth``; ``model`` is the state dict of the
DistributedDataParallel (SyncBatchNorm) ``DeepLabV3Plus`` of ``model/semseg/deeplabv3plus.py``:
``module.backbone.*`` (``model/backbone/resnet.py``), ``module.head.*`` (ASPP),
``module.reduce.*``, ``module.fuse.*``, ``module.classifier.*``. No teacher.

uda's :class:`~uda.models.UniMatchDeepLabV3Plus` keeps these module names and its encoder, timm's
``resnet101s``, has the backbone's, so the conversion is prefixes only (:data:`RULES`).
"""

from __future__ import annotations

import re
from typing import Any

from uda.models.layouts.base import (
    CheckpointLayout,
    ConvertedCheckpoint,
    ForeignCheckpointError,
    Preprocessing,
    StateDict,
    rename,
    tensor_items,
)
from uda.registry import CHECKPOINT_LAYOUTS

# UniMatch module names -> uda SMPSegmentor names (after ``module.`` is removed).
RULES: list[tuple[str, str]] = [
    (r'^backbone\.', 'net.encoder.model.'),
    (r'^(head|reduce|fuse)\.', r'net.decoder.\1.'),
    (r'^classifier\.', 'net.segmentation_head.classifier.'),
]

# Blocks per stage -> timm's deep-stem ResNet of that depth (model/backbone/resnet.py resnet50 /
# resnet101); other block counts build timm's resnet101s with ``layers`` changed.
RESNET_VARIANTS: dict[tuple[int, ...], str] = {
    (3, 4, 6, 3): 'tu-resnet50s',
    (3, 4, 23, 3): 'tu-resnet101s',
}

# dataset/transform.py normalize(): ToTensor() then ImageNet mean / std; evaluation feeds the
# image (or its sliding windows) unpadded.
UNIMATCH_PREPROCESSING = Preprocessing(
    'rgb', 1.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), size_divisor=1
)


def unimatch_state(model: StateDict) -> StateDict:
    """``model`` without DDP's ``module.`` prefix."""
    return {k[len('module.') :] if k.startswith('module.') else k: v for k, v in model.items()}


def unimatch_segmentor(state: StateDict) -> dict[str, Any]:
    """The :class:`~uda.models.SMPSegmentor` config a UniMatch state dict (no ``module.``)
    fits: the ResNet's blocks per stage, the classes from the classifier.

    The output stride is not in the weights: UniMatch's configs all use
    ``replace_stride_with_dilation=[False, False, True]`` (16), which is recorded.
    """
    if 'backbone.conv1.0.weight' not in state or 'backbone.bn1.weight' not in state:
        raise ForeignCheckpointError(
            'UniMatch layout: the backbone is not the deep-stem ResNet (no '
            "module.backbone.conv1.0.weight / bn1.weight); UniMatch's Xception backbone has no "
            f'uda network. Keys e.g. {sorted(state)[:3]}.'
        )
    depths = []
    for stage in range(1, 5):
        pattern = rf'backbone\.layer{stage}\.(\d+)\.'
        ids = {int(m.group(1)) for k in state if (m := re.match(pattern, k))}
        depths.append(max(ids) + 1 if ids else 0)
    if 0 in depths:
        raise ForeignCheckpointError(
            f'UniMatch layout: the backbone has no blocks in some stage (blocks per stage '
            f'{depths}); is it a ResNet? Keys e.g. {sorted(state)[:3]}.'
        )
    if 'classifier.weight' not in state:
        raise ForeignCheckpointError(
            f'UniMatch layout: no module.classifier.weight (keys e.g. {sorted(state)[:3]}).'
        )
    cfg: dict[str, Any] = dict(
        type='SMPSegmentor',
        arch='UniMatchDeepLabV3Plus',
        encoder_name=RESNET_VARIANTS.get(tuple(depths), 'tu-resnet101s'),
        encoder_weights=None,
        num_classes=int(state['classifier.weight'].shape[0]),
        encoder_output_stride=16,  # configs/*.yaml replace_stride_with_dilation
        decoder_atrous_rates=(6, 12, 18),  # configs/*.yaml dilations
        align_corners=True,  # every bilinear resize of deeplabv3plus.py
    )
    if tuple(depths) not in RESNET_VARIANTS:  # same blocks and names, other depths
        cfg['encoder_kwargs'] = dict(layers=tuple(depths))
    return cfg


@CHECKPOINT_LAYOUTS.register_module()
class UniMatch(CheckpointLayout):
    """UniMatch ``best.pth`` / ``latest.pth``: DeepLab-v3+ on the deep-stem ResNet-50/101.

    Reads ``model`` (``module.`` optional); ``epoch`` and ``previous_best`` go to the converted
    meta, the optimiser is ignored. Preprocessing: RGB [0, 1], ImageNet mean / std.
    """

    repository = 'LiheYoung/UniMatch'
    source_file = 'unimatch.py (checkpoint dict); model/semseg/deeplabv3plus.py'
    files = 'best.pth / latest.pth (exp/<dataset>/unimatch/r101/<split>/)'

    def matches(self, ckpt: Any) -> bool:
        if not isinstance(ckpt, dict) or not isinstance(ckpt.get('model'), dict):
            return False
        keys = unimatch_state(tensor_items(ckpt['model']))
        return 'classifier.weight' in keys and any(k.startswith('head.b0.') for k in keys)

    def convert(self, ckpt: Any) -> ConvertedCheckpoint:
        state = unimatch_state(tensor_items(ckpt['model']))
        segmentor = unimatch_segmentor(state)
        converted, unmapped = rename(state, RULES)
        meta = {k: ckpt[k] for k in ('epoch', 'previous_best') if k in ckpt}
        return ConvertedCheckpoint(
            layout=self.name,
            state_dict=converted,
            segmentor=segmentor,
            preprocessing=UNIMATCH_PREPROCESSING,
            meta=meta,
            ignored=[k for k in ckpt if k not in ('model', 'epoch', 'previous_best')],
            unmapped=[f'module.{k}' for k in unmapped],
        )
