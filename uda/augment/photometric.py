"""Photometric augmentation on the device with kornia, independent parameters per image.

The reference methods jitter colours on the CPU per image (torchvision / PIL in SAC and
UniMatch) or on the GPU with one draw for the whole batch (DACS / DAFormer decide once per step
whether to jitter and blur). Here every image of a ``[K, 3, H, W]`` batch draws its own factors,
its own coin flips and its own blur sigma through ``kornia.augmentation`` (which samples them on
the CPU, so a seed gives the same result on any device). Images are float RGB in ``[0, 1]``;
callers denormalise before and renormalise after (see
:meth:`uda.models.SegDataPreprocessor.denormalize`).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional, Sequence, Union

import kornia.augmentation as K
import torch
from torch import Tensor, nn

_STEPS = ('jitter', 'grey', 'blur')
_FORMULAS = ('torchvision', 'kornia_legacy')


def relative_kernel(size: int) -> int:
    """DACS's blur kernel extent for an image side: ``ceil(0.1 * size)`` rounded down to odd.

    ``floor(ceil(0.1 s) - 0.5 + ceil(0.1 s) % 2)`` in ``lhoyer/DAFormer:
    mmseg/models/utils/dacs_transforms.py`` ``gaussian_blur`` (from vikolss/DACS).
    """
    c = int(math.ceil(0.1 * size))
    return max(1, c if c % 2 else c - 1)


class PhotometricAugment(nn.Module):
    """Colour jitter, greyscale and Gaussian blur with per-image random parameters (kornia).

    Each step runs on each image independently with its own probability; factors are drawn per
    image (``same_on_batch=False``). kornia draws the order of the four jitter sub-steps once per
    call, shared by the batch.

    Args:
        jitter: ``(brightness, contrast, saturation, hue)`` strengths as in torchvision's
            ``ColorJitter``: factors ~ U(1 - s, 1 + s), hue shift ~ U(-h, h) turns. ``None``
            disables the jitter.
        jitter_p: Probability that an image is jittered.
        jitter_formula: ``'torchvision'`` (``kornia.augmentation.ColorJitter``: brightness
            multiplies, contrast and saturation blend with the grey image; SAC, UniMatch) or
            ``'kornia_legacy'`` (``kornia.augmentation.ColorJiggle``: the formulas of the
            kornia 0.5 ``ColorJitter`` used by DACS / DAFormer: additive brightness, contrast
            scaling raw values, HSV saturation).
        grey_p: Probability that an image is turned to greyscale (3 equal channels).
        blur_sigma: ``(lo, hi)`` range of the Gaussian blur sigma in pixels; ``None`` disables
            the blur.
        blur_p: Probability that an image is blurred.
        blur_kernel: Odd kernel size in pixels (square), or ``'relative'``: odd(ceil(0.1 H)) x
            odd(ceil(0.1 W)) of the input, as in DACS (:func:`relative_kernel`).
        order: Order of the steps, a permutation of a subset of ``('jitter', 'grey', 'blur')``;
            steps left out do not run.
        coins: ``'image'``: each image flips its own coin per step; ``'batch'``: one coin per
            step for the whole batch (all images jittered / blurred, or none), factors and
            sigmas still per image, as DACS / DAFormer / MIC draw ``random.uniform(0, 1)`` once
            per step (lhoyer/MIC seg/mmseg/models/uda/dacs.py:331-339).
    """

    def __init__(
        self,
        jitter: Optional[Sequence[float]] = None,
        jitter_p: float = 1.0,
        jitter_formula: str = 'torchvision',
        grey_p: float = 0.0,
        blur_sigma: Optional[Sequence[float]] = None,
        blur_p: float = 1.0,
        blur_kernel: Union[int, str] = 13,
        order: Sequence[str] = ('jitter', 'grey', 'blur'),
        coins: str = 'image',
    ) -> None:
        super().__init__()
        if coins not in ('image', 'batch'):
            raise ValueError(
                f"PhotometricAugment: coins={coins!r}; use 'image' (a coin per image) or "
                "'batch' (one coin per step for the batch, as DACS)."
            )
        self.coins = coins
        # With batch coins the kornia modules always apply; the coin is flipped in _augment.
        self.probs = dict(jitter=float(jitter_p), grey=float(grey_p), blur=float(blur_p))
        kp = (lambda p: 1.0) if coins == 'batch' else (lambda p: p)
        unknown = [s for s in order if s not in _STEPS]
        if unknown or len(set(order)) != len(order):
            raise ValueError(
                f'PhotometricAugment: order={tuple(order)!r}; use distinct names from {_STEPS}.'
            )
        if jitter_formula not in _FORMULAS:
            raise ValueError(
                f'PhotometricAugment: jitter_formula={jitter_formula!r}; use one of {_FORMULAS}.'
            )
        for name, p in (('jitter_p', jitter_p), ('grey_p', grey_p), ('blur_p', blur_p)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f'PhotometricAugment: {name}={p} is not a probability in [0, 1].')
        if jitter is not None and len(jitter) != 4:
            raise ValueError(
                f'PhotometricAugment: jitter={jitter!r}; give (brightness, '
                'contrast, saturation, hue), e.g. (0.4, 0.4, 0.4, 0.1).'
            )
        if blur_kernel != 'relative' and not (isinstance(blur_kernel, int) and blur_kernel % 2):
            raise ValueError(
                f'PhotometricAugment: blur_kernel={blur_kernel!r}; use an odd int '
                "or 'relative' (odd(ceil(0.1 H)) x odd(ceil(0.1 W)), as DACS)."
            )
        if blur_sigma is not None and not 0 < blur_sigma[0] <= blur_sigma[1]:
            raise ValueError(
                f'PhotometricAugment: blur_sigma={tuple(blur_sigma)!r}; give '
                '0 < lo <= hi, e.g. (0.1, 2.0).'
            )
        self.order = tuple(order)
        self.jitter: Optional[nn.Module] = None
        if jitter is not None and jitter_p > 0 and any(v > 0 for v in jitter):
            cls = K.ColorJitter if jitter_formula == 'torchvision' else K.ColorJiggle
            b, c, s, h = (float(v) for v in jitter)
            self.jitter = cls(brightness=b, contrast=c, saturation=s, hue=h, p=kp(jitter_p))
        self.grey = K.RandomGrayscale(p=kp(grey_p)) if grey_p > 0 else None
        self.blur_sigma = (
            None if blur_sigma is None else (float(blur_sigma[0]), float(blur_sigma[1]))
        )
        self.blur_p = float(blur_p)
        self.blur_kernel = blur_kernel
        # One kornia blur per kernel size ('relative' depends on the input size).
        self._blurs: dict[tuple[int, int], nn.Module] = {}

    def _blur(self, hw: Sequence[int]) -> Optional[nn.Module]:
        if self.blur_sigma is None or self.blur_p == 0:
            return None
        if self.blur_kernel == 'relative':
            ks = (relative_kernel(int(hw[0])), relative_kernel(int(hw[1])))
        else:
            ks = (int(self.blur_kernel), int(self.blur_kernel))
        if ks not in self._blurs:
            p = 1.0 if self.coins == 'batch' else self.blur_p
            self._blurs[ks] = K.RandomGaussianBlur(ks, self.blur_sigma, p=p)
        return self._blurs[ks]

    def _augment(self, x: Tensor) -> Tensor:
        for step in self.order:
            module: Optional[nn.Module]
            if step == 'jitter':
                module = self.jitter
            elif step == 'grey':
                module = self.grey
            else:
                module = self._blur(x.shape[-2:])
            if module is None:
                continue
            if self.coins == 'batch' and not float(torch.rand(())) < self.probs[step]:
                continue
            x = module(x)
        return x.clamp(0, 1)

    def forward(self, x: Tensor, generator_seed: Optional[int] = None) -> Tensor:
        """Augment ``x`` [K, 3, H, W] (float RGB in [0, 1]); returns the same shape in [0, 1].

        Args:
            x: Images on any device.
            generator_seed: With a seed, the call is reproducible and leaves the global RNG
                state untouched (kornia draws on the CPU generator, which is forked).
        """
        if x.dim() != 4 or x.shape[1] != 3 or not x.is_floating_point():
            raise ValueError(
                f'PhotometricAugment expects float RGB images [K, 3, H, W] in [0, 1]'
                f', got {x.dtype} {tuple(x.shape)}. Denormalise first (e.g. '
                'SegDataPreprocessor.denormalize(x) / 255).'
            )
        if generator_seed is None:
            return self._augment(x)
        with torch.random.fork_rng(devices=[]):
            # The CPU generator only: torch.manual_seed would also reseed every CUDA device.
            torch.random.default_generator.manual_seed(int(generator_seed))
            return self._augment(x)


def photometric_view(
    x: Tensor,
    augment: Callable[[Tensor], Tensor],
    normalize: Callable[[Tensor], Tensor],
    denormalize: Callable[[Tensor], Tensor],
    valid: Optional[Tensor] = None,
    outside: str = 'zero',
    clamp: bool = True,
) -> Tensor:
    """The one strong-view chain: normalised images ``x`` [B, 3, H, W] -> pixel values in
    [0, 1] -> ``augment`` -> renormalised, without gradient.

    Args:
        x: Normalised images [B, 3, H, W].
        augment: Photometric augmentation of [0, 1] RGB (:class:`PhotometricAugment`).
        normalize: Pixel values (0-255) -> network input (the data preprocessor's).
        denormalize: Network input -> pixel values (0-255).
        valid: Optional [B, H, W] or [B, 1, H, W] mask of image pixels (not padding).
        outside: Pixels outside ``valid``: ``'zero'`` (0 in the normalised input, the mean
            colour: DACS / MIC / SAC) or ``'input'`` (left as they were: UniMatch).
        clamp: Clamp the pixel values to [0, 1] before augmenting (SAC's views do not).
    """
    if outside not in ('zero', 'input'):
        raise ValueError(f"photometric_view(outside={outside!r}): use 'zero' or 'input'.")
    with torch.no_grad():
        rgb = denormalize(x) / 255.0
        if clamp:
            rgb = rgb.clamp(0, 1)
        out = normalize(augment(rgb) * 255.0)
        if valid is None:
            return out
        mask = valid if valid.dim() == 4 else valid[:, None]
        if outside == 'zero':
            return out * mask.to(out.dtype)
        return torch.where(mask.bool(), out, x)


# ---------------------------------------------------------------------- presets
# The photometric views of the reference methods as keyword arguments of PhotometricAugment.
# Terms and pretrainers take one config dict (``photometric=dict(preset='sac_noise')``, keys
# beside ``preset`` override it) and build it with :func:`build_photometric`.

# SAC's student noise (visinf/da-sac datasets/tf_target.py): Gaussian blur sigma ~ U(0.1, 2) on
# every image (PIL ``GaussianBlur(radius)``, here a 13 px kernel = 3 sigma_max either side),
# then colour jitter brightness / contrast / saturation 0.4, hue 0.1 with p 0.5 (torchvision
# ``ColorJitter``), then greyscale with p 0.2.
SAC_NOISE: dict[str, Any] = dict(
    jitter=(0.4, 0.4, 0.4, 0.1),
    jitter_p=0.5,
    grey_p=0.2,
    blur_sigma=(0.1, 2.0),
    blur_p=1.0,
    blur_kernel=13,
    order=('blur', 'jitter', 'grey'),
)
# DACS / DAFormer / MIC strong augmentation (lhoyer/DAFormer mmseg/models/utils/
# dacs_transforms.py ``color_jitter`` / ``gaussian_blur``): the kornia 0.5 ``ColorJitter``
# formulas (``ColorJiggle`` today) with brightness = contrast = saturation = hue = 0.2
# (DAFormer; DACS 0.25) with p 0.8 (applied when U(0, 1) > 0.2), then a Gaussian blur with p
# 0.5, sigma ~ U(0.15, 1.15), kernel odd(ceil(0.1 H)) x odd(ceil(0.1 W)); one coin per step for
# the batch, as the reference (dacs.py:331-339; ``coins='image'``: per image).
DACS_STRONG: dict[str, Any] = dict(
    jitter=(0.2, 0.2, 0.2, 0.2),
    jitter_p=0.8,
    jitter_formula='kornia_legacy',
    blur_sigma=(0.15, 1.15),
    blur_p=0.5,
    blur_kernel='relative',
    order=('jitter', 'blur'),
    coins='batch',
)
# UniMatch's strong view (LiheYoung/UniMatch dataset/semi.py, dataset/transform.py):
# torchvision ``ColorJitter(0.5, 0.5, 0.5, 0.25)`` with p 0.8, greyscale with p 0.2, then a
# Gaussian blur with p 0.5, sigma ~ U(0.1, 2) (PIL ``GaussianBlur(radius)``, here 13 px).
UNIMATCH_STRONG: dict[str, Any] = dict(
    jitter=(0.5, 0.5, 0.5, 0.25),
    jitter_p=0.8,
    grey_p=0.2,
    blur_sigma=(0.1, 2.0),
    blur_p=0.5,
    blur_kernel=13,
    order=('jitter', 'grey', 'blur'),
)
# MoCo v2's view noise (facebookresearch/moco main_moco.py ``aug_plus``):
# ``RandomApply([ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8)``, ``RandomGrayscale(p=0.2)``, then
# ``RandomApply([GaussianBlur([0.1, 2.0])], p=0.5)`` (PIL radius = sigma); kernel odd(ceil(0.1
# H)), 10 % of the image side as SimCLR / BYOL's 23 px at 224. Geometric parts
# (``RandomResizedCrop(scale=(0.2, 1))``, flip) belong to the dataset's view pipelines.
MOCOV2_VIEW: dict[str, Any] = dict(
    jitter=(0.4, 0.4, 0.4, 0.1),
    jitter_p=0.8,
    grey_p=0.2,
    blur_sigma=(0.1, 2.0),
    blur_p=0.5,
    blur_kernel='relative',
    order=('jitter', 'grey', 'blur'),
)
PRESETS: dict[str, dict[str, Any]] = dict(
    sac_noise=SAC_NOISE,
    dacs_strong=DACS_STRONG,
    unimatch_strong=UNIMATCH_STRONG,
    mocov2_view=MOCOV2_VIEW,
)


def build_photometric(cfg: Optional[dict], who: str) -> Optional[PhotometricAugment]:
    """A :class:`PhotometricAugment` from one config dict: ``dict(preset=<name in PRESETS>,
    **overrides)`` or the keyword arguments themselves; None: no augmentation.

    Args:
        cfg: The config dict, or None.
        who: The config key, named in errors (``'ClassMix(photometric=...)'``).
    """
    if cfg is None:
        return None
    if not isinstance(cfg, dict):
        raise TypeError(
            f'{who}: give one dict, e.g. dict(preset={sorted(PRESETS)[0]!r}) or the keyword '
            f'arguments of PhotometricAugment; got {cfg!r}.'
        )
    # Config files may give lists where PhotometricAugment takes tuples.
    kwargs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}
    preset = kwargs.pop('preset', None)
    if preset is not None:
        if preset not in PRESETS:
            raise KeyError(f'{who}: unknown preset {preset!r}; use one of {sorted(PRESETS)}.')
        kwargs = {**PRESETS[preset], **kwargs}
    try:
        return PhotometricAugment(**kwargs)
    except TypeError as err:
        raise TypeError(f'{who}: {err}; give keyword arguments of PhotometricAugment.') from None


def sac_noise() -> PhotometricAugment:
    """SAC's student noise (:data:`SAC_NOISE`)."""
    return PhotometricAugment(**SAC_NOISE)


def dacs_strong(strength: float = 0.2) -> PhotometricAugment:
    """DACS / DAFormer strong augmentation (:data:`DACS_STRONG`) with jitter strength
    ``strength`` (0.2 DAFormer; DACS 0.25) and a coin per image (the reference: per batch)."""
    s = float(strength)
    return PhotometricAugment(**dict(DACS_STRONG, jitter=(s, s, s, s), coins='image'))


def unimatch_strong() -> PhotometricAugment:
    """UniMatch's strong view (:data:`UNIMATCH_STRONG`)."""
    return PhotometricAugment(**UNIMATCH_STRONG)


def mocov2_view() -> PhotometricAugment:
    """MoCo v2's photometric view noise (:data:`MOCOV2_VIEW`)."""
    return PhotometricAugment(**MOCOV2_VIEW)
