"""tools/test.py end to end on the toy runner config: every output file, and bad checkpoints."""

from __future__ import annotations

import json
import os
import runpy
import sys

import pytest
import torch
from mmengine.config import Config
from PIL import Image

from tests.conftest import toy_runner_cfg
from uda.registry import MODELS


def run_test_tool(argv: list[str]) -> None:
    old = sys.argv
    sys.argv = ['tools/test.py'] + argv
    try:
        runpy.run_path('tools/test.py', run_name='__main__')
    finally:
        sys.argv = old


def setup(tmp_path, num_classes: int = 19) -> tuple[str, str]:
    cfg = toy_runner_cfg(str(tmp_path / 'train'))
    cfg.update(
        test_dataloader=cfg['val_dataloader'],
        test_evaluator=cfg['val_evaluator'],
        test_cfg=dict(type='TestLoop'),
    )
    cfg['model']['test_cfg'] = dict(crop_size=(16, 16), stride=(8, 8), scales=(0.5, 1.0))
    cfg['test_evaluator'] = dict(
        type='IoUMetric', protocol='cityscapes19', eval_protocol='synthetic9'
    )
    Config(cfg).dump(str(tmp_path / 'cfg.py'))
    model_cfg = dict(cfg['model'])
    model_cfg['segmentor'] = dict(type='ToySegmentor', num_classes=num_classes)
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    torch.save(dict(state_dict=model.state_dict(), meta={}), str(tmp_path / 'ckpt.pth'))
    return str(tmp_path / 'cfg.py'), str(tmp_path / 'ckpt.pth')


@pytest.mark.parametrize('mode', [pytest.param('slide', marks=pytest.mark.slow), 'aug'])
def test_outputs(tmp_path, mode: str) -> None:
    cfg, ckpt = setup(tmp_path)
    out = tmp_path / 'test'
    run_test_tool([cfg, ckpt, '--work-dir', str(out), '--mode', mode, '--labelids'])
    report = json.loads((out / 'metrics.json').read_text())
    assert report['num_images'] == 4 and report['protocol'] == 'synthetic9'
    assert '| road |' in (out / 'per_class.md').read_text()
    assert Image.open(out / 'confusion_matrix.png').size[0] > 100
    for sub in ('pred', 'overlay', 'labelIds'):
        files = os.listdir(out / sub)
        assert len(files) == 4, sub
    pred = Image.open(out / 'pred' / sorted(os.listdir(out / 'pred'))[0])
    assert pred.mode == 'RGB' and pred.size == (64, 32)


def test_wrong_class_count_is_an_error(tmp_path, capsys) -> None:
    cfg, ckpt = setup(tmp_path, num_classes=11)
    with pytest.raises(SystemExit) as code:  # the tool prints `error: ...` and exits 2
        run_test_tool([cfg, ckpt, '--work-dir', str(tmp_path / 'test')])
    assert code.value.code == 2
    assert 'another class count or architecture' in capsys.readouterr().err
