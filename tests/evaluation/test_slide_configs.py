"""``tools/test.py --mode slide`` resolves valid windows for every leaf config."""

from __future__ import annotations

import glob

import pytest
from mmengine.config import Config

from uda.evaluation.inference import _pair, resolve_test_cfg

# Pretraining configs (configs/pretrain, tools/pretrain.py) have no test-time inference.
LEAF_CONFIGS = sorted(
    p for p in glob.glob('configs/*/*.py') if '/_base_/' not in p and '/pretrain/' not in p
)


def test_there_are_leaf_configs() -> None:
    assert len(LEAF_CONFIGS) >= 20


@pytest.mark.parametrize('path', LEAF_CONFIGS)
def test_slide_mode_resolves_for_every_leaf_config(path: str) -> None:
    cfg = Config.fromfile(path)
    test_cfg = resolve_test_cfg(cfg, {'mode': 'slide', 'which': None})
    assert test_cfg['mode'] == 'slide'
    crop, stride = _pair(test_cfg['crop_size'], 'crop'), _pair(test_cfg['stride'], 'stride')
    assert all(0 < s <= c for s, c in zip(stride, crop)), path
    if 'crop_size' in cfg and 'crop_size' not in (cfg.model.get('test_cfg') or {}):
        assert crop == tuple(cfg.crop_size), 'the windows are the training crop'


def test_layers_dataset_then_model_then_flags() -> None:
    cfg = Config(
        dict(
            inference_cfg=dict(crop_size=(96, 96), stride=(64, 64)),
            model=dict(test_cfg=dict(mode='aug', stride=(32, 32))),
        )
    )
    out = resolve_test_cfg(cfg)
    assert out['mode'] == 'aug' and out['crop_size'] == (96, 96) and out['stride'] == (32, 32)
    assert resolve_test_cfg(cfg, {'mode': 'slide', 'which': 'teacher'})['which'] == 'teacher'


def test_slide_without_windows_names_the_fix() -> None:
    with pytest.raises(ValueError, match='inference_cfg = dict'):
        resolve_test_cfg(Config(dict(model=dict())), {'mode': 'slide'})
