"""A weak-only (single-stage CAM) run, trained by the Runner, is evaluated by tools/test.py like
any segmentor (constant background logit included)."""

from __future__ import annotations

import json

import pytest
from mmengine.config import Config
from mmengine.runner import Runner

from tests.conftest import toy_runner_cfg
from tests.tools.test_test_tool import run_test_tool


@pytest.mark.slow  # a 2-iteration Runner run + tools/test.py: ~10 s on a shared 2-core CPU
def test_cam_run_then_test_tool(tmp_path) -> None:
    maps = dict(branch='source', background=0)
    terms = dict(
        cam=dict(type='SingleStageCAM', **maps),
        cam_mask=dict(type='SingleStageCAMMask', pamr_iter=2, **maps),
    )
    cfg = toy_runner_cfg(str(tmp_path / 'train'), max_iters=2, val_interval=2, terms=terms)
    cfg['model']['segmentor']['constant_logit'] = dict(index=0, value=1.0)
    # Image labels only: the labelled source scenes give classes, not masks.
    source = cfg['train_dataloader']['dataset']['branches']['source']
    source.update(with_label=False, image_labels='from_mask')
    cfg.update(
        test_dataloader=cfg['val_dataloader'],
        test_evaluator=dict(type='IoUMetric', protocol='cityscapes19', eval_protocol='synthetic9'),
        test_cfg=dict(type='TestLoop'),
    )
    Runner.from_cfg(Config(cfg)).train()
    Config(cfg).dump(str(tmp_path / 'cfg.py'))
    out = tmp_path / 'test'
    run_test_tool(
        [str(tmp_path / 'cfg.py'), str(tmp_path / 'train' / 'iter_2.pth'), '--work-dir', str(out)]
    )
    report = json.loads((out / 'metrics.json').read_text())
    assert report['num_images'] == 4 and 'mIoU' in report
