"""Image panels for TensorBoard: input, ground truth, prediction, and term panels."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from uda.data.classes import get_protocol
from uda.registry import HOOKS
from uda.visualization import colorize, panel, to_rgb


@HOOKS.register_module()
class SegVisualizationHook(Hook):
    """Write panels to the visualizer's backends (TensorBoard, local files).

    Every ``interval`` training iterations: for each branch, the first image, its ground truth
    (if labelled) and the student's prediction, plus any panels a term exposes through
    ``Term.vis_panels()`` (pseudo-labels, confidence). On the first validation batch: input,
    ground truth and prediction.

    Panel names use ``_`` rather than ``/``: the local backend writes one file per name.

    Args:
        interval: Training iterations between panels (0: never).
        protocol: Class protocol for colours; the dataset's by default.
        draw_val: Also draw the first validation image.
    """

    priority = 'LOW'

    def __init__(
        self, interval: int = 100, protocol: Optional[str] = None, draw_val: bool = True
    ) -> None:
        self.interval = interval
        self.protocol = protocol
        self.draw_val = draw_val

    def _palette(self, runner: Any) -> Sequence[Sequence[int]]:
        if self.protocol:
            return get_protocol(self.protocol).palette
        for loader in ('val_dataloader', 'train_dataloader'):
            try:
                return getattr(runner, loader).dataset.metainfo['palette']
            except Exception:  # loader not built / no metainfo: try the next one
                continue
        return get_protocol('cityscapes19').palette

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        if data_batch is None or not self.every_n_train_iters(runner, self.interval):
            return
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        palette = self._palette(runner)
        branches = data_batch if 'inputs' not in data_batch else {'train': data_batch}
        student = model.segmentor_for('student')
        was_training = student.training
        student.eval()
        try:
            for name, branch in branches.items():
                one = dict(inputs=branch['inputs'][:1], data_samples=branch['data_samples'][:1])
                data = model.data_preprocessor(one, False)
                with torch.no_grad():
                    pred = model.predict(data['inputs'], data['data_samples'])[0]
                tiles = [to_rgb(branch['inputs'][0])]
                if 'gt_sem_seg' in pred:
                    tiles.append(colorize(pred['gt_sem_seg'], palette))
                tiles.append(colorize(pred['pred_sem_seg'], palette))
                runner.visualizer.add_image(f'train_{name}', panel(tiles), step=runner.iter + 1)
        finally:
            student.train(was_training)
        for term in getattr(model, 'terms', {}).values():
            for key, img in term.vis_panels().items():
                arr = colorize(img, palette) if img.ndim == 2 else to_rgb(img)
                runner.visualizer.add_image(f'train_{key}', arr, step=runner.iter + 1)

    def after_val_iter(
        self,
        runner: Any,
        batch_idx: int,
        data_batch: Any = None,
        outputs: Optional[Sequence[dict]] = None,
    ) -> None:
        if not self.draw_val or batch_idx != 0 or not outputs or data_batch is None:
            return
        palette = self._palette(runner)
        out = outputs[0]
        tiles = [to_rgb(data_batch['inputs'][0])]
        if 'gt_sem_seg' in out:
            tiles.append(colorize(out['gt_sem_seg'], palette))
        tiles.append(colorize(out['pred_sem_seg'], palette))
        runner.visualizer.add_image('val_prediction', panel(tiles), step=runner.iter)
