"""Write coloured predictions of the test loop as PNG files."""
from __future__ import annotations

import os
import os.path as osp
from typing import Any, Optional, Sequence

from mmengine.hooks import Hook
from PIL import Image

from uda.data.classes import get_protocol
from uda.engine.hooks.visualization_hook import colorize
from uda.registry import HOOKS


@HOOKS.register_module()
class PredictionWriterHook(Hook):
    """Save ``<out_dir>/<image name>.png`` with the predicted classes in the palette colours.

    Args:
        out_dir: Output folder (created).
        protocol: Class protocol for the palette.
        max_images: Stop after this many images (None = all).
    """

    priority = 'LOW'

    def __init__(self, out_dir: str, protocol: str = 'cityscapes19',
                 max_images: Optional[int] = None) -> None:
        self.out_dir = out_dir
        self.palette = get_protocol(protocol).palette
        self.max_images = max_images
        self._count = 0

    def before_test(self, runner: Any) -> None:
        os.makedirs(self.out_dir, exist_ok=True)
        self._count = 0

    def after_test_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                        outputs: Optional[Sequence[dict]] = None) -> None:
        for out in outputs or []:
            if self.max_images is not None and self._count >= self.max_images:
                return
            name = str(out.get('img_path', '')) or f'{self._count:06d}'
            stem = osp.splitext(name.replace('://', '_').replace('/', '_'))[0]
            Image.fromarray(colorize(out['pred_sem_seg'], self.palette)).save(
                osp.join(self.out_dir, f'{stem}.png'))
            self._count += 1
