"""Every pretraining config loads, builds its model and dataset, and pretrains the encoder of
the benchmark configs (UNet-ResNet-18)."""

from __future__ import annotations

import glob
import os

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

from uda.registry import DATASETS, HOOKS, MODELS

ROOT = os.path.join(os.path.dirname(__file__), '..', '..')
LEAVES = sorted(glob.glob(os.path.join(ROOT, 'configs', 'pretrain', '*.py')))
DOWNSTREAM = os.path.join(ROOT, 'configs', '_base_', 'models', 'unet_resnet18.py')


def test_there_are_pretraining_configs():
    names = [os.path.basename(p) for p in LEAVES]
    assert any(n.startswith('mocov2_') and 'camvid' in n for n in names)
    assert any(n.startswith('mocov2_') and 'synthetic' in n for n in names)


@pytest.mark.parametrize('path', LEAVES, ids=os.path.basename)
def test_leaf_builds_model_optimiser_and_hooks(path):
    cfg = Config.fromfile(path)
    assert cfg.model.segmentor == Config.fromfile(DOWNSTREAM).segmentor
    hooks = [h['type'] for h in cfg.custom_hooks]
    assert 'EncoderExportHook' in hooks
    with DefaultScope.overwrite_default_scope('uda'), torch.device('meta'):
        model = MODELS.build(cfg.model.to_dict())
        build_optim_wrapper(model, cfg.optim_wrapper)
        for h in cfg.custom_hooks:
            HOOKS.build(h)
    assert type(model.student.encoder).__name__ == 'ResNetEncoder'
    # Every view the model reads is a view of the train dataset branch.
    branches = cfg.train_dataloader.dataset.branches
    names = {f'{b}.{v}' for b, c in branches.items() for v in c.get('views', {})}
    assert set(cfg.model.photometric) <= names


@pytest.mark.parametrize('path', [p for p in LEAVES if 'synthetic' in p], ids=os.path.basename)
def test_synthetic_leaf_dataset_gives_the_views(path):
    cfg = Config.fromfile(path)
    with DefaultScope.overwrite_default_scope('uda'):
        ds = DATASETS.build(cfg.train_dataloader.dataset.to_dict())
    sample = ds[0]
    assert set(sample) == set(ds.batch_branches)
    assert len(ds) == 2000
