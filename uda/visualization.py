"""Colouring, panels and overlays: the one place that turns label maps into pictures.

Used by the training panels (``uda.engine.hooks.SegVisualizationHook``), the test loop's
prediction files (``PredictionWriterHook``) and ``tools/infer.py``
(``uda.evaluation.image_predictor.save_prediction``), so engine and evaluation need not import
each other for colours. The colour lookup follows mmseg's ``SegLocalVisualizer``
(``open-mmlab/mmsegmentation:mmseg/visualization/local_visualizer.py``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from uda.losses.entropy import pixel_entropy


def colorize(label: torch.Tensor | np.ndarray, palette: Sequence[Sequence[int]]) -> np.ndarray:
    """Label ids [H, W] -> RGB uint8 [H, W, 3]; ids outside the palette (ignore) are black."""
    lut = np.zeros((256, 3), np.uint8)
    lut[: len(palette)] = np.asarray(palette, np.uint8)
    lbl = label.detach().cpu().numpy() if isinstance(label, torch.Tensor) else np.asarray(label)
    return lut[np.clip(lbl, 0, 255).astype(np.int64)]


def to_rgb(img: torch.Tensor) -> np.ndarray:
    """uint8 (0-255 valued) [3, H, W] tensor -> uint8 [H, W, 3] array."""
    return img.detach().cpu().permute(1, 2, 0).numpy().astype(np.uint8)


def panel(images: list[np.ndarray]) -> np.ndarray:
    """Tiles side by side, separated by a 2-pixel white bar; shorter tiles are padded black.

    Grey tiles [H, W] are repeated to three channels.
    """
    h = max(i.shape[0] for i in images)
    tiles = []
    for im in images:
        if im.ndim == 2:
            im = np.repeat(im[..., None], 3, -1)
        if im.shape[0] < h:
            im = np.pad(im, ((0, h - im.shape[0]), (0, 0), (0, 0)))
        tiles += [im, np.full((h, 2, 3), 255, np.uint8)]
    return np.concatenate(tiles[:-1], 1)


def overlay(image: np.ndarray, colour: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend an RGB uint8 image [H, W, 3] with a coloured mask of the same size.

    ``alpha`` is the weight of the mask: ``round((1 - alpha) * image + alpha * colour)``.
    """
    if image.shape != colour.shape:
        raise ValueError(f'Image {image.shape} and mask {colour.shape} differ in size.')
    out = (1 - alpha) * image.astype(np.float32) + alpha * colour.astype(np.float32)
    return out.round().clip(0, 255).astype(np.uint8)


# ---------------------------------------------------------------------- training panels
# Tensors a term returns from ``vis_panels()`` (uda.engine.hooks.SegVisualizationHook draws
# them): RGB uint8 [3, H, W] images, or [H, W] class-id maps (coloured with the palette).


def image_panel(pixels: torch.Tensor) -> torch.Tensor:
    """Pixel values (0-255, float) [3, H, W] -> uint8 [3, H, W], detached."""
    return pixels.clamp(0, 255).to(torch.uint8).detach()


def mask_panel(mask: torch.Tensor) -> torch.Tensor:
    """A mask [H, W] (True / nonzero = white) -> uint8 [3, H, W] black and white, detached."""
    return ((mask != 0).to(torch.uint8)[None].expand(3, -1, -1) * 255).detach()


def entropy_panel(logits: torch.Tensor) -> torch.Tensor:
    """Normalised entropy of one image's logits [1, C, H, W] as a grey uint8 [3, H, W] image."""
    ent = pixel_entropy(logits.float())[0].clamp(0, 1)
    return (ent * 255).round().to(torch.uint8).cpu().unsqueeze(0).repeat(3, 1, 1)
