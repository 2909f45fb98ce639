"""Source-free adaptation: training from a checkpoint on target images only."""

from __future__ import annotations

import glob
import os
import uuid

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

import uda.engine  # noqa: F401  (checkpoint loader)
from uda.data.synthetic import SyntheticDataset
from uda.registry import MODELS

ROOT = os.path.join(os.path.dirname(__file__), '..', '..')
LEAVES = sorted(glob.glob(os.path.join(ROOT, 'configs/source-free/*_synthetic-96x192.py')))


def test_every_source_free_leaf_is_tested():
    assert {os.path.basename(p).split('_')[0] for p in LEAVES} == {
        'source-free-sac',
        'source-free-minent',
        'source-free-weak-strong',
    }


@pytest.mark.parametrize('path', LEAVES, ids=os.path.basename)
def test_source_free_training_builds_no_source_dataset(path, tmp_path, monkeypatch):
    built: list[str] = []
    init = SyntheticDataset.__init__

    def spy(self, *args, **kwargs):
        built.append(kwargs.get('style', args[0] if args else 'source'))
        init(self, *args, **kwargs)

    monkeypatch.setattr(SyntheticDataset, '__init__', spy)
    cfg = Config.fromfile(path)
    assert cfg.load_from, 'a source-free leaf starts from a trained checkpoint (load_from)'
    assert list(cfg.train_dataloader.dataset.branches) == ['target']
    cfg.model.segmentor = dict(type='ToySegmentor', num_classes=19)
    # A trained "source model": the toy's weights with a recognisable classifier bias.
    with DefaultScope.overwrite_default_scope('uda'):
        source = MODELS.build(cfg.model.to_dict())
    with torch.no_grad():
        source.student.classifier.bias.fill_(0.25)
    ckpt = str(tmp_path / 'source.pth')
    torch.save(dict(state_dict=source.state_dict(), meta={}), ckpt)
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        loader.num_workers, loader.persistent_workers = 0, False
    tgt = cfg.train_dataloader.dataset.branches.target
    tgt.num_samples, tgt.size = 4, (32, 64)
    cfg.val_dataloader.dataset.num_samples, cfg.val_dataloader.dataset.size = 2, (32, 64)
    cfg.test_dataloader = cfg.val_dataloader
    cfg.train_dataloader.batch_size = 2
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=1, val_interval=10)
    cfg.param_scheduler = []
    cfg.default_hooks = dict(
        checkpoint=dict(type='SafeCheckpointHook', by_epoch=False, interval=10),
        logger=dict(type='LoggerHook', interval=1),
        teacher=cfg.default_hooks.teacher,  # default_runtime.py's: drives SAC's teacher
    )
    cfg.visualizer = dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend')])
    cfg.work_dir, cfg.load_from = str(tmp_path), ckpt
    cfg.experiment_name = f'sf_{uuid.uuid4().hex[:12]}'
    cfg.log_level = 'WARNING'
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 1
    assert built and 'source' not in built, built
    student = runner.model.student
    # Started from the checkpoint (a random init would not have bias 0.25 +- one small step).
    assert torch.allclose(
        student.classifier.bias, torch.full_like(student.classifier.bias, 0.25), atol=0.05
    )
