"""Predict masks for image files, from a checkpoint or an exported network (``tools/infer.py``).

Every image is predicted alone at its own size: normalised, padded bottom/right to the
network's stride, run in the configured mode (whole / slide / aug), and cropped back, so
folders of mixed sizes work. An image above ``max_pixels`` (a 8000x6000 photo) is predicted
with sliding windows one row of windows at a time (:func:`banded_slide`), so memory is bounded
by the width of the image, not its area, with a progress bar over the rows. Masks are saved
as palette PNGs (pixel value = class id, shown in the class colours) next to overlays on the
image.
"""

from __future__ import annotations

import glob
import os
import warnings
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from mmengine.config import Config
from PIL import Image
from torch import Tensor

from uda.engine.checkpoint import refuse_url
from uda.evaluation.inference import (
    resolve_test_cfg,
    run_inference,
    whole_inference,
    window_starts,
)
from uda.models.data_preprocessor import SegDataPreprocessor
from uda.visualization import colorize, overlay

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')
EXPORTED_EXTENSIONS = ('.onnx', '.safetensors', '.torchscript', '.pt', '.ts')


def list_images(source: str) -> list[str]:
    """Image files of a folder (recursive), a glob pattern, or one file; sorted."""
    if os.path.isdir(source):
        paths = [
            os.path.join(root, f)
            for root, _, files in os.walk(source)
            for f in files
            if f.lower().endswith(IMAGE_EXTENSIONS)
        ]
    elif os.path.isfile(source):
        paths = [source]
    else:
        paths = [p for p in glob.glob(source, recursive=True) if os.path.isfile(p)]
    if not paths:
        raise FileNotFoundError(
            f'No images found at {source!r}: give a folder, a glob pattern '
            f"such as 'frames/*.png', or an image file ({IMAGE_EXTENSIONS})."
        )
    return sorted(paths)


class ImagePredictor:
    """Turn one RGB image into a label map with a network that returns logits.

    Args:
        net: ``float [B, 3, H, W] -> logits [B, C, H, W]`` (H, W multiples of ``stride``).
        mean: Per-channel mean (0-255 units) of the training normalisation.
        std: Per-channel std (0-255 units).
        stride: Inputs are padded to a multiple of this.
        classes: Class names.
        palette: RGB colour per class.
        test_cfg: Inference mode (``uda.evaluation.inference.check_test_cfg``).
        device: Torch device of the inputs.
        channel_order: The network's input channel order, ``'rgb'`` or ``'bgr'``
            (``SegDataPreprocessor``); images are read as RGB.
        max_pixels: Images with more pixels are predicted by :func:`banded_slide` with the
            windows of ``test_cfg`` (the dataset base's ``inference_cfg``), else
            ``LARGE_WINDOW``, whatever the mode (a warning says so for 'whole' / 'aug').
    """

    def __init__(
        self,
        net: Callable[[Tensor], Tensor],
        mean: Sequence[float],
        std: Sequence[float],
        stride: int,
        classes: Sequence[str],
        palette: Sequence[Sequence[int]],
        test_cfg: Optional[dict] = None,
        device: str = 'cpu',
        channel_order: str = 'rgb',
        max_pixels: int = 2048 * 2048,
    ) -> None:
        self.net, self.stride, self.device = net, int(stride), torch.device(device)
        self.max_pixels = int(max_pixels)
        # The training normalisation, stated once (SegDataPreprocessor.normalize).
        self.preprocessor = SegDataPreprocessor(
            mean, std, size_divisor=self.stride, channel_order=channel_order
        ).to(self.device)
        self.classes, self.palette = list(classes), [tuple(c) for c in palette]
        self.test_cfg = dict(test_cfg or {})
        self.test_cfg.pop('which', None)

    @torch.no_grad()
    def __call__(self, image: np.ndarray, name: str = 'image') -> np.ndarray:
        """RGB uint8 [H, W, 3] -> uint8 class ids [H, W]; ``name`` labels the progress bar of
        a large image."""
        h, w = image.shape[:2]
        if h * w > self.max_pixels:
            return self._large(image, name)
        x = torch.from_numpy(np.array(image, dtype=np.uint8, copy=True)).to(self.device)
        x = self.preprocessor.normalize(x.permute(2, 0, 1)[None].float())
        scores = run_inference(self.net, x, self.test_cfg, self.stride)
        return scores[0].argmax(0).to(torch.uint8).cpu().numpy()

    def _large(self, image: np.ndarray, name: str) -> np.ndarray:
        crop = self.test_cfg.get('crop_size') or LARGE_WINDOW
        stride = self.test_cfg.get('stride') or LARGE_STRIDE
        mode = self.test_cfg.get('mode', 'whole')
        if mode != 'slide':
            warnings.warn(
                f'{name}: {image.shape[1]}x{image.shape[0]} pixels is above max_pixels '
                f'({self.max_pixels}); predicted with sliding windows {tuple(crop)} every '
                f'{tuple(stride)} instead of mode {mode!r}, to bound memory.',
                stacklevel=3,
            )

        def normalize(window: Tensor) -> Tensor:  # uint8 [h, w, 3] -> normalised [1, 3, h, w]
            x = window.to(self.device).permute(2, 0, 1)[None].float()
            return self.preprocessor.normalize(x)

        return banded_slide(
            self.net, torch.from_numpy(image), normalize, crop, stride, self.stride, name
        )

    @classmethod
    def from_checkpoint(
        cls,
        config: str,
        checkpoint: str,
        which: str = 'student',
        test_cfg: Optional[dict] = None,
        device: str = 'cpu',
    ) -> 'ImagePredictor':
        """Build the config's segmentor with the ``which`` weights of a training checkpoint."""
        from uda.export.common import load_segmentor
        from uda.export.metadata import build_metadata

        refuse_url(config, 'Config')
        if not os.path.isfile(config):
            raise FileNotFoundError(f'Config file not found: {config} (needed with a .pth).')
        cfg = Config.fromfile(config)
        net = load_segmentor(cfg, checkpoint, which).to(device)
        meta = build_metadata(
            cfg,
            int(getattr(net, 'num_classes', 0)) or _num_classes(net, device),
            which,
            checkpoint,
            'pytorch',
        )
        mode = resolve_test_cfg(cfg, test_cfg)
        return cls._from_meta(net, meta, mode, device)

    @classmethod
    def from_exported(
        cls, path: str, test_cfg: Optional[dict] = None, device: str = 'cpu'
    ) -> 'ImagePredictor':
        """Load an export of ``tools/export.py`` (ONNX, TorchScript or safetensors + sidecar)."""
        from uda.export.metadata import read_sidecar

        refuse_url(path, 'Model')
        if not os.path.isfile(path):
            raise FileNotFoundError(f'Model file not found: {path}.')
        meta = read_sidecar(path)
        fmt = meta.get('format')
        if fmt == 'onnx':
            from uda.export.onnx import onnx_runner

            runner = onnx_runner(path)

            def net(x: Tensor) -> Tensor:
                return torch.from_numpy(runner(x.cpu().numpy())).to(x.device)
        elif fmt == 'torchscript':
            net = torch.jit.load(path, map_location=device).eval()
        elif fmt == 'safetensors':
            from uda.export.safetensors_io import load_safetensors

            net = load_safetensors(path, meta).to(device)
        else:
            raise ValueError(
                f"Sidecar of {path} names format {fmt!r}; expected 'onnx', "
                "'torchscript' or 'safetensors'."
            )
        return cls._from_meta(net, meta, test_cfg, device)

    @classmethod
    def _from_meta(
        cls, net: Any, meta: dict, test_cfg: Optional[dict], device: str
    ) -> 'ImagePredictor':
        norm = meta['normalization']
        return cls(
            net,
            norm['mean'],
            norm['std'],
            meta['stride'],
            meta['classes'],
            meta['palette'],
            test_cfg,
            device,
            str(norm.get('color_order', 'RGB')).lower(),
        )


# Windows of a large image when the config gives none (the training crop of the 512 bases).
LARGE_WINDOW, LARGE_STRIDE = (512, 512), (341, 341)


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, float)) else (int(v[0]), int(v[1]))


def banded_slide(
    net: Callable[[Tensor], Tensor],
    image: Tensor,
    normalize: Callable[[Tensor], Tensor],
    crop_size: Any,
    stride: Any,
    size_divisor: int = 1,
    name: Optional[str] = None,
) -> np.ndarray:
    """Class ids [H, W] of :func:`uda.evaluation.inference.slide_inference`, with memory
    bounded by the image width.

    ``slide_inference`` sums the windows' logits into one [C, H, W] buffer (3.6 GB for 19
    classes on an 8000x6000 photo, besides the normalised float image). Here the windows run
    row by row (the same windows, in the same order, so the same sums and the same ids);
    once a row of windows is done, no later window reaches the rows above the next row's top,
    so those rows are decided (argmax) and dropped from a buffer ``crop_h`` rows high. Each
    window is normalised from the uint8 image only when it runs.

    Args:
        net: ``float [1, 3, h, w] -> logits [1, C, h, w]``.
        image: uint8 [H, W, 3] (CPU).
        normalize: uint8 window [h, w, 3] -> normalised float [1, 3, h, w] on the device.
        crop_size: Window (height, width).
        stride: Step (height, width) between windows, at most ``crop_size``.
        size_divisor: Each window is padded to a multiple of this.
        name: Shown on the progress bar over the rows of windows (None: no bar).
    """
    from tqdm import tqdm

    ch, cw = _pair(crop_size)
    sh, sw = _pair(stride)
    if sh > ch or sw > cw:
        raise ValueError(
            f'stride {(sh, sw)} is larger than crop_size {(ch, cw)}: pixels between windows '
            'would get no prediction. Use stride <= crop_size.'
        )
    h, w = image.shape[:2]
    rows, cols = window_starts(h, ch, sh), window_starts(w, cw, sw)
    out = np.empty((h, w), np.uint8)
    band: Optional[Tensor] = None  # logit sums of rows [top, top + ch)
    count = torch.zeros((min(ch, h), w))
    top = rows[0]
    bar = tqdm(
        total=len(rows), desc=f'{name}: window rows', unit='row', leave=False, disable=name is None
    )
    for i, y in enumerate(rows):
        y2 = min(y + ch, h)
        if y > top:  # the buffer moves down to this row's top: rows above it are done
            shift, keep = y - top, min(ch, h) - (y - top)
            if band is not None:  # copy only the rows that later windows still add to
                band[:, :keep] = band[:, shift:].clone()
                band[:, keep:] = 0
            count[:keep] = count[shift:].clone()
            count[keep:] = 0
            top = y
        for x in cols:
            x2 = min(x + cw, w)
            logits = whole_inference(net, normalize(image[y:y2, x:x2]), size_divisor)[0]
            if band is None:
                band = logits.new_zeros((logits.shape[0], min(ch, h), w))
            band[:, : y2 - top, x:x2] += logits
            count[: y2 - top, x:x2] += 1
        nxt = rows[i + 1] if i + 1 < len(rows) else h
        assert band is not None and bool((count[: nxt - top] > 0).all())
        for x in range(0, w, 1024):  # the mean logits of 1024 columns at a time
            done = band[:, : nxt - top, x : x + 1024] / count[: nxt - top, x : x + 1024].to(
                band.device
            )
            out[top:nxt, x : x + 1024] = done.argmax(0).to(torch.uint8).cpu().numpy()
        bar.update(1)
    bar.close()
    return out


def _num_classes(net: Any, device: str) -> int:
    with torch.no_grad():
        return int(net(torch.zeros(1, 3, 64, 64, device=device)).shape[1])


def save_prediction(
    label: np.ndarray,
    image: np.ndarray,
    palette: Sequence[Sequence[int]],
    out_dir: str,
    rel_name: str,
    alpha: float = 0.5,
) -> None:
    """Write ``masks/<rel>.png`` (palette PNG: values = class ids) and ``overlays/<rel>.png``."""
    stem = os.path.splitext(rel_name)[0] + '.png'
    for sub in ('masks', 'overlays'):
        os.makedirs(os.path.dirname(os.path.join(out_dir, sub, stem)), exist_ok=True)
    mask = Image.fromarray(label, mode='P')
    flat = [v for c in palette for v in c]
    mask.putpalette(flat + [0] * (768 - len(flat)))
    mask.save(os.path.join(out_dir, 'masks', stem))
    Image.fromarray(overlay(image, colorize(label, palette), alpha)).save(
        os.path.join(out_dir, 'overlays', stem)
    )
