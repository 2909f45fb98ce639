"""Inference modes on a network that maps a normalised batch [B, 3, H, W] to logits.

Three ways to turn a network into a dense prediction, shared by the validation loop
(:meth:`uda.methods.adapter.Adapter.inference`), ``tools/test.py`` and ``tools/infer.py``:

* :func:`whole_inference` - one forward pass on the whole (padded) image.
* :func:`slide_inference` - overlapping ``crop_size`` windows every ``stride`` pixels; the
  logits of overlapping windows are averaged, so every pixel is the mean over the windows
  that cover it (for images larger than what fits in memory, or networks trained on crops).
* :func:`aug_inference` - multi-scale + horizontal-flip test-time augmentation: the softmax
  probabilities of every (scale, flip) pass are resized back and averaged (the mmseg
  convention; averaging probabilities rather than logits keeps one over-confident pass from
  dominating).

Images are padded bottom/right to a multiple of ``size_divisor`` (encoders downsample by 32)
and the outputs cropped back, so any input size works.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import torch.nn.functional as F
from torch import Tensor

from uda.models.data_preprocessor import divisible_size, pad_bottom_right

Net = Callable[[Tensor], Tensor]
Size = Union[int, Sequence[int]]


def _pair(v: Size, name: str) -> tuple[int, int]:
    if isinstance(v, int):
        v = (v, v)
    v = tuple(int(i) for i in v)
    if len(v) != 2 or min(v) <= 0:
        raise ValueError(f'{name} must be a positive int or (height, width), got {v!r}.')
    return v[0], v[1]


def pad_to_divisor(x: Tensor, size_divisor: int) -> Tensor:
    """Zero-pad [B, C, H, W] bottom/right so H and W are multiples of ``size_divisor``.

    Zero is the normalised mean colour, the same value (and the same helper) the data
    preprocessor pads batches with.
    """
    return pad_bottom_right(x, divisible_size(x.shape[-2:], size_divisor), 0.0)


def whole_inference(net: Net, inputs: Tensor, size_divisor: int = 1) -> Tensor:
    """Logits [B, C, H, W] from one forward pass (padded to the divisor, cropped back)."""
    h, w = inputs.shape[-2:]
    logits = net(pad_to_divisor(inputs, size_divisor))
    if logits.shape[-2:] != (h, w) and logits.shape[-2] >= h and logits.shape[-1] >= w:
        logits = logits[..., :h, :w]
    if logits.shape[-2:] != (h, w):
        raise ValueError(
            f'The network returned logits of size {tuple(logits.shape[-2:])} for an '
            f'input of {(h, w)}; segmentors must return logits at input size.'
        )
    return logits


def window_starts(length: int, crop: int, stride: int) -> list[int]:
    """Start offsets of sliding windows along one axis; the last window ends at the border.

    ``ceil((length - crop) / stride) + 1`` windows, the last one shifted back so it ends at
    ``length`` (no window hangs over the border). A length below ``crop`` gives one window.
    """
    if length <= crop:
        return [0]
    n = int(math.ceil((length - crop) / stride)) + 1
    return [min(i * stride, length - crop) for i in range(n)]


def slide_inference(
    net: Net, inputs: Tensor, crop_size: Size, stride: Size, size_divisor: int = 1
) -> Tensor:
    """Logits [B, C, H, W] averaged over overlapping ``crop_size`` windows.

    Args:
        net: Maps [B, 3, h, w] to logits [B, C, h, w].
        inputs: Normalised images [B, 3, H, W].
        crop_size: Window (height, width); windows are clipped to the image when it is smaller.
        stride: Step (height, width) between windows; below ``crop_size`` windows overlap.
        size_divisor: Windows (and the image) are padded to a multiple of this.
    """
    ch, cw = _pair(crop_size, 'crop_size')
    sh, sw = _pair(stride, 'stride')
    if sh > ch or sw > cw:
        raise ValueError(
            f'stride {(sh, sw)} is larger than crop_size {(ch, cw)}: pixels between '
            'windows would get no prediction. Use stride <= crop_size.'
        )
    b, _, h, w = inputs.shape
    total: Optional[Tensor] = None
    count = inputs.new_zeros((1, 1, h, w))
    for y in window_starts(h, ch, sh):
        for x in window_starts(w, cw, sw):
            y2, x2 = min(y + ch, h), min(x + cw, w)
            crop_logits = whole_inference(net, inputs[:, :, y:y2, x:x2], size_divisor)
            if total is None:
                total = inputs.new_zeros((b, crop_logits.shape[1], h, w))
            total[:, :, y:y2, x:x2] += crop_logits
            count[:, :, y:y2, x:x2] += 1
    assert total is not None and bool((count > 0).all())
    return total / count


def aug_inference(
    net: Net,
    inputs: Tensor,
    scales: Sequence[float] = (1.0,),
    flip: bool = True,
    size_divisor: int = 1,
    crop_size: Optional[Size] = None,
    stride: Optional[Size] = None,
) -> Tensor:
    """Mean softmax probabilities [B, C, H, W] over scales x (no flip, horizontal flip).

    Each pass resizes the input bilinearly to ``round(scale * H), round(scale * W)``, predicts
    (whole image, or sliding windows when ``crop_size`` and ``stride`` are given), flips back,
    resizes the logits to H x W and applies softmax. The argmax is the prediction; the values
    are probabilities, not logits.
    """
    if not scales:
        raise ValueError('aug_inference needs at least one scale, e.g. scales=(1.0,).')
    h, w = inputs.shape[-2:]
    probs: Optional[Tensor] = None
    n = 0
    for scale in scales:
        if scale <= 0:
            raise ValueError(f'Test scales must be positive, got {scale}.')
        size = (max(1, int(round(h * scale))), max(1, int(round(w * scale))))
        x = (
            inputs
            if size == (h, w)
            else F.interpolate(inputs, size, mode='bilinear', align_corners=False)
        )
        for flipped in (False, True) if flip else (False,):
            xi = x.flip(-1) if flipped else x
            if crop_size is not None and stride is not None:
                logits = slide_inference(net, xi, crop_size, stride, size_divisor)
            else:
                logits = whole_inference(net, xi, size_divisor)
            if flipped:
                logits = logits.flip(-1)
            if logits.shape[-2:] != (h, w):
                logits = F.interpolate(logits, (h, w), mode='bilinear', align_corners=False)
            p = logits.softmax(1)
            probs = p if probs is None else probs + p
            n += 1
    assert probs is not None
    return probs / n


TEST_MODES = ('whole', 'slide', 'aug')
TEST_CFG_KEYS = ('mode', 'crop_size', 'stride', 'scales', 'flip', 'which')


def check_test_cfg(test_cfg: Optional[dict]) -> dict[str, Any]:
    """Fill the defaults of ``model.test_cfg`` and reject inconsistent settings early.

    Keys: ``mode`` ('whole' | 'slide' | 'aug', default 'whole'); ``crop_size`` and ``stride``
    ((h, w) or int; used by 'slide'); ``scales`` (default (1.0,)) and ``flip`` (default True)
    used by 'aug' (whole-image passes); ``which`` ('student' | 'teacher', default 'student').
    Keys a mode does not use are kept, so one config can hold the settings of every mode.
    """
    cfg: dict[str, Any] = dict(mode='whole', which='student', scales=(1.0,), flip=True)
    cfg.update(dict(test_cfg or {}))
    unknown = sorted(set(cfg) - set(TEST_CFG_KEYS))
    if unknown:
        raise KeyError(f'model.test_cfg has unknown keys {unknown}; known: {list(TEST_CFG_KEYS)}.')
    if cfg['mode'] not in TEST_MODES:
        raise ValueError(
            f'model.test_cfg.mode={cfg["mode"]!r} is not supported; use one of {list(TEST_MODES)}.'
        )
    if cfg['which'] not in ('student', 'teacher'):
        raise ValueError(f"model.test_cfg.which={cfg['which']!r}; use 'student' or 'teacher'.")
    has_crop = cfg.get('crop_size') is not None, cfg.get('stride') is not None
    if cfg['mode'] == 'slide' and not all(has_crop):
        raise ValueError(
            "model.test_cfg.mode='slide' needs crop_size and stride, e.g. "
            'test_cfg=dict(mode="slide", crop_size=(512, 512), stride=(341, 341)).'
        )
    if has_crop[0] != has_crop[1]:
        raise ValueError('model.test_cfg: give crop_size and stride together (or neither).')
    cfg['scales'] = tuple(float(s) for s in cfg['scales'])
    if not cfg['scales'] or min(cfg['scales']) <= 0:
        raise ValueError(f'model.test_cfg.scales={cfg["scales"]} must be positive numbers.')
    return cfg


def resolve_test_cfg(cfg: Mapping, overrides: Optional[Mapping] = None) -> dict[str, Any]:
    """The checked ``model.test_cfg`` that ``tools/test.py`` / ``tools/infer.py`` evaluate with.

    Layers, later ones winning: the dataset base's ``inference_cfg`` (every base in
    ``configs/_base_/datasets/`` gives slide windows there: the training crop, stride 2/3 of it
    as mmseg's slide test_cfg, e.g. 640 / 426 in
    ``open-mmlab/mmsegmentation:configs/_base_/models/upernet_beit.py``), then the
    method's ``model.test_cfg``, then ``overrides`` (``--mode`` / ``--which``; None values
    ignored). The windows live in a separate top-level key because the dataset base may not
    define ``model`` too (two bases may not define one key).
    """
    merged = dict(cfg.get('inference_cfg') or {})
    merged.update(dict((cfg.get('model') or {}).get('test_cfg') or {}))
    merged.update({k: v for k, v in dict(overrides or {}).items() if v is not None})
    if merged.get('mode') == 'slide' and (
        merged.get('crop_size') is None or merged.get('stride') is None
    ):
        raise ValueError(
            "Slide inference needs windows, and neither the dataset base's "
            'inference_cfg nor model.test_cfg gives crop_size and stride. Add '
            'inference_cfg = dict(crop_size=..., stride=...) to the dataset base, '
            'or pass --cfg-options model.test_cfg.crop_size=... '
            'model.test_cfg.stride=...'
        )
    return check_test_cfg(merged)


def run_inference(net: Net, inputs: Tensor, test_cfg: dict, size_divisor: int = 1) -> Tensor:
    """Scores [B, C, H, W] in the mode of a (checked) ``test_cfg``.

    Logits for 'whole' and 'slide', mean softmax probabilities for 'aug'.
    """
    cfg = check_test_cfg(test_cfg)
    if cfg['mode'] == 'slide':
        return slide_inference(net, inputs, cfg['crop_size'], cfg['stride'], size_divisor)
    if cfg['mode'] == 'aug':
        return aug_inference(net, inputs, cfg['scales'], cfg['flip'], size_divisor)
    return whole_inference(net, inputs, size_divisor)
