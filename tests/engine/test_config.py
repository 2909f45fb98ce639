"""Every config loads and builds; unknown --cfg-options keys are rejected."""
import glob
import os

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

from uda.engine.config import check_cfg_options, load_config
from uda.registry import DATASETS, METRICS, MODELS

ROOT = os.path.join(os.path.dirname(__file__), '..', '..')
LEAVES = sorted(p for p in glob.glob(os.path.join(ROOT, 'configs', '**', '*.py'), recursive=True)
                if '_base_' not in p)
BASES = sorted(glob.glob(os.path.join(ROOT, 'configs', '_base_', '**', '*.py'), recursive=True))


def _types(node, found):
    if isinstance(node, dict):
        if isinstance(node.get('type'), str):
            found.add(node['type'])
        for v in node.values():
            _types(v, found)
    elif isinstance(node, (list, tuple)):
        for v in node:
            _types(v, found)
    return found


@pytest.mark.parametrize('path', BASES, ids=lambda p: os.path.relpath(p, ROOT))
def test_base_config_loads(path):
    Config.fromfile(path)


@pytest.mark.parametrize('path', LEAVES, ids=lambda p: os.path.relpath(p, ROOT))
def test_leaf_config_builds_with_toy_segmentor(path):
    cfg = Config.fromfile(path)
    model_cfg = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else dict(cfg.model)
    model_cfg['segmentor'] = dict(type='ToySegmentor',
                                  num_classes=model_cfg['segmentor'].get('num_classes', 19))
    with DefaultScope.overwrite_default_scope('uda'):
        model = MODELS.build(model_cfg)
        assert model.terms
        METRICS.build(cfg.val_evaluator)
        # Every `type` in the dataloaders names a registered class.
        for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            for t in _types(cfg.get(key, {}), set()):
                assert t in DATASETS.available() or t in (
                    'MultiBranchInfiniteSampler', 'DefaultSampler', 'InfiniteSampler',
                    'uda_collate', 'default_collate', 'pseudo_collate') or t[0].isupper(), t


def test_unknown_cfg_option_key_is_rejected():
    cfg = Config(dict(train_cfg=dict(max_iters=1), model=dict(segmentor=dict(type='X'))))
    with pytest.raises(KeyError, match=r"'trian_cfg' is not a key"):
        check_cfg_options(cfg, {'trian_cfg.max_iters': 3}, 'c.py')
    with pytest.raises(KeyError, match=r"'segmentr' is not under model"):
        check_cfg_options(cfg, {'model.segmentr.type': 'Y'}, 'c.py')
    check_cfg_options(cfg, {'model.segmentor.aux_head': 1, 'train_cfg.max_iters': 2}, 'c.py')


def test_missing_config_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='Config file not found'):
        load_config(str(tmp_path / 'nope.py'))
