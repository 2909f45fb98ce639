"""Write the pretrained encoder as ``<work_dir>/encoder.pth`` when pretraining ends."""

from __future__ import annotations

import os.path as osp
from typing import Any

import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from uda.engine.checkpoint import commit_file
from uda.registry import HOOKS


@HOOKS.register_module()
class EncoderExportHook(Hook):
    """Save the model's ``encoder_state_dict()`` after the last iteration.

    The file is ``{'state_dict': <SMPSegmentor.net.encoder keys, no prefix>, 'meta': {...}}``
    (the "uda" layout): ``segmentor.net.encoder.load_state_dict(sd, strict=True)`` loads it.
    ``meta`` names the layout, the method, the encoder (arch, name, channels), the iterations
    and the config, so a cached file can be checked against the config that wants it. It is
    written through a temporary file and an atomic rename, so a killed run never leaves a
    truncated ``encoder.pth`` that a cache check would accept.

    Args:
        filename: File name inside the work dir.
    """

    priority = 'LOW'

    def __init__(self, filename: str = 'encoder.pth') -> None:
        self.filename = filename

    def after_train(self, runner: Any) -> None:
        if not is_main_process():
            return
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        export = getattr(model, 'encoder_state_dict', None)
        if not callable(export):
            raise RuntimeError(
                f'EncoderExportHook: {type(model).__name__} has no encoder_state_dict(); the '
                'hook belongs to pretraining configs (uda.pretrain models).'
            )
        from uda.pretrain.base import ENCODER_LAYOUT

        meta = dict(
            layout=ENCODER_LAYOUT,
            method=type(model).__name__,
            iterations=int(runner.iter),
            config=getattr(runner.cfg, 'filename', None),
            seed=runner.seed,
            **getattr(model, 'encoder_meta', {}),
        )
        path = osp.join(runner.work_dir, self.filename)
        tmp = f'{path}.tmp'
        torch.save({'state_dict': export(), 'meta': meta}, tmp)
        commit_file(tmp, path)
        print_log(f'EncoderExportHook: pretrained encoder -> {path}', logger='current')
