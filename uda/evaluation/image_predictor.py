"""Predict masks for image files, from a checkpoint or an exported network (``tools/infer.py``).

Every image is predicted alone at its own size: normalised, padded bottom/right to the
network's stride, run in the configured mode (whole / slide / aug), and cropped back, so
folders of mixed sizes work. Masks are saved as palette PNGs (pixel value = class id, shown in
the class colours) next to overlays on the image.
"""

from __future__ import annotations

import glob
import os
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from mmengine.config import Config
from PIL import Image
from torch import Tensor

from uda.evaluation.inference import resolve_test_cfg, run_inference
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
    ) -> None:
        self.net, self.stride, self.device = net, int(stride), torch.device(device)
        # The training normalisation, stated once (SegDataPreprocessor.normalize).
        self.preprocessor = SegDataPreprocessor(
            mean, std, size_divisor=self.stride, channel_order=channel_order
        ).to(self.device)
        self.classes, self.palette = list(classes), [tuple(c) for c in palette]
        self.test_cfg = dict(test_cfg or {})
        self.test_cfg.pop('which', None)

    @torch.no_grad()
    def __call__(self, image: np.ndarray) -> np.ndarray:
        """RGB uint8 [H, W, 3] -> uint8 class ids [H, W]."""
        x = torch.from_numpy(np.array(image, dtype=np.uint8, copy=True)).to(self.device)
        x = self.preprocessor.normalize(x.permute(2, 0, 1)[None].float())
        scores = run_inference(self.net, x, self.test_cfg, self.stride)
        return scores[0].argmax(0).to(torch.uint8).cpu().numpy()

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
