"""Write the test loop's predictions: coloured masks, overlays, Cityscapes labelIds PNGs."""

from __future__ import annotations

import os
import os.path as osp
from typing import Any, Optional, Sequence

import torch
from mmengine.hooks import Hook
from PIL import Image

from uda.data.classes import get_protocol
from uda.registry import HOOKS
from uda.visualization import colorize, overlay, to_rgb


@HOOKS.register_module()
class PredictionWriterHook(Hook):
    """Save predictions under ``out_dir`` for each test image.

    ``pred/<name>.png`` is the predicted classes in palette colours and ``overlay/<name>.png``
    that mask blended over the input image (as the test pipeline delivered it). With
    ``labelid_dir``, ``<labelid_dir>/<image stem>.png`` holds Cityscapes labelIds for the
    official evaluation script; its names keep the image's own stem (``<city>_<seq>_<frame>_
    leftImg8bit``) because the script matches predictions by that prefix.

    Args:
        out_dir: Output folder (created).
        protocol: Class protocol for the palette.
        max_images: Stop writing colour/overlay PNGs after this many images (None = all);
            labelIds PNGs are always written for every image (the evaluation needs all).
        overlay_alpha: Weight of the mask in overlays; 0 disables overlays.
        labelid_dir: Folder for Cityscapes labelIds PNGs (trainIds of ``cityscapes19``), or None.
    """

    priority = 'LOW'

    def __init__(
        self,
        out_dir: str,
        protocol: str = 'cityscapes19',
        max_images: Optional[int] = None,
        overlay_alpha: float = 0.5,
        labelid_dir: Optional[str] = None,
    ) -> None:
        self.out_dir = out_dir
        self.palette = get_protocol(protocol).palette
        if (
            labelid_dir is not None
            and get_protocol(protocol).classes != get_protocol('cityscapes19').classes
        ):
            raise ValueError(
                f'Cityscapes labelIds need predictions in the cityscapes19 label '
                f"space; this evaluation uses '{protocol}'. Drop labelid_dir."
            )
        self.max_images = max_images
        self.overlay_alpha = overlay_alpha
        self.labelid_dir = labelid_dir
        self._count = 0
        self._labelid_names: set[str] = set()

    def before_test(self, runner: Any) -> None:
        os.makedirs(osp.join(self.out_dir, 'pred'), exist_ok=True)
        if self.overlay_alpha > 0:
            os.makedirs(osp.join(self.out_dir, 'overlay'), exist_ok=True)
        if self.labelid_dir:
            os.makedirs(self.labelid_dir, exist_ok=True)
        self._count = 0
        self._labelid_names = set()

    def after_test_iter(
        self,
        runner: Any,
        batch_idx: int,
        data_batch: Any = None,
        outputs: Optional[Sequence[dict]] = None,
    ) -> None:
        inputs = (data_batch or {}).get('inputs') if isinstance(data_batch, dict) else None
        for i, out in enumerate(outputs or []):
            name = str(out.get('img_path', '')) or f'{self._count:06d}'
            if self.labelid_dir:
                self._write_labelids(name, out['pred_sem_seg'])
            if self.max_images is not None and self._count >= self.max_images:
                continue
            stem = osp.splitext(name.replace('://', '_').replace('/', '_'))[0]
            colour = colorize(out['pred_sem_seg'], self.palette)
            Image.fromarray(colour).save(osp.join(self.out_dir, 'pred', f'{stem}.png'))
            if self.overlay_alpha > 0 and inputs is not None and i < len(inputs):
                img = to_rgb(inputs[i])[: colour.shape[0], : colour.shape[1]]
                if img.shape == colour.shape:
                    Image.fromarray(overlay(img, colour, self.overlay_alpha)).save(
                        osp.join(self.out_dir, 'overlay', f'{stem}.png')
                    )
            self._count += 1

    def _write_labelids(self, name: str, pred: torch.Tensor) -> None:
        from uda.evaluation.cityscapes_format import write_labelid_png

        stem = osp.splitext(osp.basename(name))[0] or f'{len(self._labelid_names):06d}'
        if stem in self._labelid_names:
            raise ValueError(
                f'Two test images are named {stem}; Cityscapes labelIds files are '
                'named by image stem, so stems must be unique.'
            )
        self._labelid_names.add(stem)
        write_labelid_png(pred, osp.join(str(self.labelid_dir), f'{stem}.png'))
