"""Released DeepLab-v2 ResNet checkpoints: da-sac, ADVENT and AdaptSegNet.

All three use the Caffe-ported DeepLab-v2 ResNet (stride on each bottleneck's 1x1 ``conv1``,
``ceil_mode`` max pool, four summed dilated 3x3 classifiers ``conv2d_list.0-3``), so the
converted network is uda's ``DeepLabV2`` with ``encoder_style='caffe'`` and logits upsampled with
``align_corners=True`` as their evaluation code does. They differ in where the classifiers sit,
what else the file holds, and the input they expect:

- da-sac (visinf/da-sac): ``{'model', 'opt', 'score', 'epoch'}``, the DDP state dict of
  ``SAC`` (``module.backbone.model.*``; final files also ``module.slow_net.model.*``, the
  momentum teacher); RGB in [0, 1] with ImageNet mean / std.
- ADVENT (valeoai/ADVENT) and AdaptSegNet (wasidennis/AdaptSegNet): a bare state dict,
  ``layer6`` on layer4 the main classifier and ``layer5`` on layer3 the auxiliary one; BGR
  0-255 minus ``IMG_MEAN``, no std. AdaptSegNet's classifier sums only its first two branches
  (a ``return`` inside the loop), so its files need ``summed_branches=2``. The two layouts have
  the same keys: ``auto`` refuses to guess between them.
"""

from __future__ import annotations

import re
from typing import Any, Optional

import segmentation_models_pytorch as smp
from torchvision.models.resnet import Bottleneck

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

# Caffe's ImageNet mean in B, G, R order, subtracted from 0-255 BGR images without division
# (valeoai/ADVENT advent/domain_adaptation/config.py:59; wasidennis/AdaptSegNet
# train_gta2cityscapes_multi.py:24).
IMG_MEAN_BGR = (104.00698793, 116.66876762, 122.67891434)
# Their evaluation feeds whole images unpadded (DeepLab-v2 takes any size): size_divisor 1.
CAFFE_BGR = Preprocessing('bgr', 255.0, IMG_MEAN_BGR, size_divisor=1)
# da-sac normalises RGB in [0, 1] with ImageNet statistics (visinf/da-sac
# datasets/dataloader_base.py MEAN / STD). Its ``renorm`` (SOURCE_MEAN / TARGET_MEAN) changes
# only the *source* training images (datasets/dataloader_seg.py:95-107): Cityscapes evaluation
# uses these.
IMAGENET_RGB = Preprocessing(
    'rgb', 1.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), size_divisor=1
)

ASPP_RATES = (6, 12, 18, 24)  # Classifier_Module([6, 12, 18, 24], [6, 12, 18, 24], C)
_BACKBONE = re.compile(r'^(conv1|bn1|layer[1-4])\.')
_BLOCK = re.compile(r'^layer([1-4])\.(\d+)\.conv1\.weight$')


def resnet_encoder_name(state: StateDict, layout: str) -> str:
    """smp's name of the bottleneck ResNet with the file's block counts per stage.

    ``layer{1-4}.<i>.conv1.weight`` give the depth ([3, 4, 23, 3]: ``resnet101``); the name is
    looked up in smp's encoder table, so any registered bottleneck ResNet fits.
    """
    blocks = [0, 0, 0, 0]
    for key in state:
        m = _BLOCK.match(key)
        if m:
            blocks[int(m.group(1)) - 1] = max(blocks[int(m.group(1)) - 1], int(m.group(2)) + 1)
    for name, entry in smp.encoders.encoders.items():
        params = entry.get('params', {})
        if params.get('block') is Bottleneck and list(params.get('layers', [])) == blocks:
            return name
    raise ForeignCheckpointError(
        f'{layout}: the file has a bottleneck ResNet with {blocks} blocks per stage, which no '
        'smp encoder builds (resnet50: [3, 4, 6, 3], resnet101: [3, 4, 23, 3], '
        'resnet152: [3, 8, 36, 3]).'
    )


def num_classes_of(state: StateDict, prefix: str, layout: str) -> int:
    """Class count from a classifier's first branch ``<prefix>conv2d_list.0.weight``."""
    key = f'{prefix}conv2d_list.0.weight'
    if key not in state:
        raise ForeignCheckpointError(f'{layout}: the file has no classifier {key}.')
    return int(state[key].shape[0])


def deeplabv2_segmentor(
    encoder_name: str,
    num_classes: int,
    aux: bool = False,
    summed_branches: Optional[int] = None,
) -> dict[str, Any]:
    """The uda segmentor config of a Caffe-style DeepLab-v2 (optionally with ADVENT's layer3
    classifier as head ``aux``)."""
    cfg: dict[str, Any] = dict(
        type='SMPSegmentor',
        arch='DeepLabV2',
        encoder_name=encoder_name,
        encoder_weights=None,
        num_classes=num_classes,
        align_corners=True,  # their evaluation upsamples with align_corners=True
        encoder_style='caffe',
        rates=ASPP_RATES,
    )
    if summed_branches is not None:
        cfg['summed_branches'] = summed_branches
    if aux:
        cfg['aux_head'] = dict(type='aspp', in_index=-2, rates=ASPP_RATES)
        if summed_branches is not None:
            cfg['aux_head']['summed_branches'] = summed_branches
    return cfg


def _resnet(state: StateDict, classifier: str) -> tuple[StateDict, list[str]]:
    """Backbone keys to ``net.encoder.*`` and ``<classifier>.conv2d_list.i`` to the ASPP."""
    return rename(
        state,
        [
            (_BACKBONE.pattern, r'net.encoder.\1.'),
            (rf'^{classifier}\.conv2d_list\.(\d+)\.', r'net.decoder.branches.\1.'),
        ],
    )


@CHECKPOINT_LAYOUTS.register_module()
class DaSac(CheckpointLayout):
    """visinf/da-sac DeepLab-v2 ResNet snapshots (``baseline_abn_e040.pth``, ``final_e136.pth``).

    ``utils/checkpoints.py:68-71`` saves ``{'model': DDP(SAC).state_dict(), 'opt', 'score',
    'epoch'}``; the student is ``module.backbone.model.*`` (``DeepLabV2_ResNet101.model``,
    ``models/deeplabv2.py``), final files add the momentum teacher ``module.slow_net.model.*``
    and SAC's ``running_conf`` (class prior) and ``slow_init`` buffers (``models/sac.py:53-63``),
    kept in the meta. Its VGG-16 files (``module.backbone.features.*``) are not read.
    """

    repository = 'visinf/da-sac'
    source_file = 'utils/checkpoints.py:68-71 (models/deeplabv2.py, models/sac.py)'
    files = 'snapshots/baselines/resnet101_gta/baseline_abn_e040.pth, .../final_e136.pth'

    _PREFIXES = ('module.', '')

    def _model(self, ckpt: Any) -> tuple[StateDict, str]:
        model = tensor_items(ckpt.get('model')) if isinstance(ckpt, dict) else {}
        for prefix in self._PREFIXES:
            if any(k.startswith(f'{prefix}backbone.model.') for k in model):
                return model, prefix
        return {}, ''

    def matches(self, ckpt: Any) -> bool:
        return bool(self._model(ckpt)[0])

    def convert(self, ckpt: Any) -> ConvertedCheckpoint:
        model, prefix = self._model(ckpt)
        student, unmapped = _resnet(with_prefix(model, f'{prefix}backbone.model.'), 'layer5')
        teacher: Optional[StateDict] = None
        slow = with_prefix(model, f'{prefix}slow_net.model.')
        if slow:
            teacher, unmapped_t = _resnet(slow, 'layer5')
            unmapped += [f'slow_net.model.{k}' for k in unmapped_t]
        own = (f'{prefix}backbone.model.', f'{prefix}slow_net.model.')
        bookkeeping = {f'{prefix}running_conf', f'{prefix}slow_init'}
        unmapped += [k for k in model if not k.startswith(own) and k not in bookkeeping]
        meta: dict[str, Any] = {k: ckpt[k] for k in ('epoch', 'score') if k in ckpt}
        if f'{prefix}running_conf' in model:  # SAC's class prior chi_c
            meta['running_conf'] = model[f'{prefix}running_conf'].tolist()
        raw = with_prefix(model, f'{prefix}backbone.model.')
        return ConvertedCheckpoint(
            layout=self.name,
            state_dict=student,
            teacher_state_dict=teacher,
            segmentor=deeplabv2_segmentor(
                resnet_encoder_name(raw, self.name), num_classes_of(raw, 'layer5.', self.name)
            ),
            preprocessing=IMAGENET_RGB,
            meta=meta,
            ignored=sorted(set(ckpt) - {'model'}) + sorted(bookkeeping & set(model)),
            unmapped=unmapped,
        )


class _MultiLevel(CheckpointLayout):
    """The bare ``ResNetMulti`` state dict of ADVENT and AdaptSegNet: ``layer6`` (main, on
    layer4) and ``layer5`` (auxiliary, on layer3) ``Classifier_Module``s."""

    summed_branches: Optional[int] = None

    def _state(self, ckpt: Any) -> StateDict:
        state = tensor_items(ckpt)
        if not state or len(state) != len(ckpt):  # a bare state dict holds tensors only
            return {}
        return state

    def matches(self, ckpt: Any) -> bool:
        state = self._state(ckpt)
        return (
            'conv1.weight' in state
            and 'layer6.conv2d_list.0.weight' in state
            and 'layer5.conv2d_list.0.weight' in state
        )

    def convert(self, ckpt: Any) -> ConvertedCheckpoint:
        state = self._state(ckpt)
        out, unmapped = rename(
            state,
            [
                (_BACKBONE.pattern, r'net.encoder.\1.'),
                (r'^layer6\.conv2d_list\.(\d+)\.', r'net.decoder.branches.\1.'),
                (r'^layer5\.conv2d_list\.(\d+)\.', r'heads.aux.branches.\1.'),
            ],
        )
        return ConvertedCheckpoint(
            layout=self.name,
            state_dict=out,
            segmentor=deeplabv2_segmentor(
                resnet_encoder_name(state, self.name),
                num_classes_of(state, 'layer6.', self.name),
                aux=True,
                summed_branches=self.summed_branches,
            ),
            preprocessing=CAFFE_BGR,
            unmapped=unmapped,
        )


@CHECKPOINT_LAYOUTS.register_module()
class Advent(_MultiLevel):
    """valeoai/ADVENT models (``gta2cityscapes_advent.pth``, ``..._minent_ER.pth`` ...).

    A plain ``ResNetMulti`` state dict, loaded strictly by ``eval_UDA.py:133-135``; the model is
    ``advent/model/deeplabv2.py`` (all four classifier branches summed).
    """

    repository = 'valeoai/ADVENT'
    source_file = 'advent/model/deeplabv2.py, advent/domain_adaptation/eval_UDA.py:133-135'
    files = 'gta2cityscapes_advent.pth, gta2cityscapes_minent_ER.pth, gta2cityscapes_minent.pth'


@CHECKPOINT_LAYOUTS.register_module()
class AdaptSegNet(_MultiLevel):
    """wasidennis/AdaptSegNet multi-level models (``GTA2Cityscapes_multi-ed35151c.pth``).

    Same keys as ADVENT (``model/deeplab_multi.py:136-137``), but ``Classifier_Module.forward``
    returns inside its loop (``:114-118``): only the dilation-6 and -12 branches are summed,
    which the converted network reproduces with ``summed_branches=2``.
    """

    repository = 'wasidennis/AdaptSegNet'
    source_file = 'model/deeplab_multi.py, evaluate_cityscapes.py:103-112'
    files = 'GTA2Cityscapes_multi-ed35151c.pth, DA_Seg_models.zip (*_multi*.pth)'

    summed_branches = 2
