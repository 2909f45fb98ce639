"""tools/pretrain.py: a short Runner run writes encoder.pth that loads strictly into the
segmentor's encoder, and --resume continues the queue and the momentum encoder."""

from __future__ import annotations

import importlib.util
import os
import sys
import uuid
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import DefaultScope

from uda.engine.config import load_config
from uda.registry import MODELS

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / 'configs/pretrain/mocov2_unet-resnet18_300_synthetic-96x192.py'


def _tool():
    spec = importlib.util.spec_from_file_location('pretrain_tool', ROOT / 'tools/pretrain.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def small_cfg(config: Path, work_dir: Path, max_iters: int, **extra) -> Config:
    """The config on 2-image batches of 32x32 crops, no worker processes, a checkpoint each
    iteration."""
    options = {
        'train_cfg.max_iters': max_iters,
        'train_dataloader.batch_size': 2,
        'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'default_hooks.checkpoint.interval': 1,
        'default_hooks.logger.interval': 1,
        'experiment_name': f'pretrain_{uuid.uuid4().hex[:12]}',
        'log_level': 'WARNING',
    }
    options.update(extra)
    cfg = load_config(str(config), options, str(work_dir))
    views = cfg.train_dataloader.dataset.branches.images.views
    for pipeline in views.values():
        pipeline[0]['size'] = (32, 32)
    return cfg


def test_two_iterations_write_an_encoder_that_loads_strictly(tmp_path):
    tool = _tool()
    # No periodic checkpoint (two networks + SGD state: ~180 MB a save); resume is tested below.
    extra = {'model.queue_size': 8, 'default_hooks.checkpoint.interval': 100}
    cfg = small_cfg(CONFIG, tmp_path, 2, **extra)
    runner = tool.build_runner(cfg, str(CONFIG))
    runner.train()
    ckpt = torch.load(tmp_path / 'encoder.pth', map_location='cpu', weights_only=True)
    assert ckpt['meta']['layout'] == 'uda' and ckpt['meta']['method'] == 'MoCoV2'
    assert ckpt['meta']['iterations'] == 2 and ckpt['meta']['encoder_name'] == 'resnet18'
    # The downstream network of the CamVid / built-in benchmark configs.
    seg_cfg = Config.fromfile(str(ROOT / 'configs/_base_/models/unet_resnet18.py')).segmentor
    with DefaultScope.overwrite_default_scope('uda'):
        seg = MODELS.build(dict(seg_cfg, num_classes=11))
    # nn.Module's loader (smp's encoder override drops the report).
    report = nn.Module.load_state_dict(seg.net.encoder, ckpt['state_dict'], strict=True)
    assert not report.missing_keys and not report.unexpected_keys
    trained = runner.model.student.encoder.state_dict()
    for k, v in seg.net.encoder.state_dict().items():
        assert torch.equal(v, trained[k]), k
    # The pretraining moved the encoder away from its initialisation.
    assert not torch.equal(trained['conv1.weight'], runner.model.teacher.net.encoder.conv1.weight)
    # The segmentor's own loader (segmentor.encoder_checkpoint, layout 'auto') reads it whole.
    with DefaultScope.overwrite_default_scope('uda'):
        seg = MODELS.build(
            dict(
                seg_cfg, num_classes=11, encoder_checkpoint=dict(file=str(tmp_path / 'encoder.pth'))
            )
        )
    rep = seg.checkpoint_report
    assert rep.layout.endswith('uda') and rep.share == 1.0
    assert not rep.missing and not rep.unexpected
    for k, v in seg.net.encoder.state_dict().items():
        assert torch.equal(v, trained[k]), k


@pytest.mark.slow
def test_resume_continues_queue_and_momentum_encoder(tmp_path):
    tool = _tool()
    extra = {'model.queue_size': 16}
    tool.build_runner(small_cfg(CONFIG, tmp_path, 2, **extra), str(CONFIG)).train()
    saved = torch.load(tmp_path / 'iter_2.pth', map_location='cpu', weights_only=False)
    assert int(saved['state_dict']['teacher.updates']) == 2
    assert int(saved['state_dict']['criterion.memory_bank.bank_ptr']) == 4
    cfg = small_cfg(CONFIG, tmp_path, 3, **extra)
    cfg.resume = True
    runner = tool.build_runner(cfg, str(CONFIG))
    runner.train()
    model = runner.model
    assert runner.iter == 3 and int(model.teacher.updates) == 3
    # The queue kept the 4 keys of the first run and appended 2 (a fresh one restarts at 0).
    assert int(model.criterion.memory_bank.bank_ptr) == 6
    assert torch.equal(model.queue[:4], saved['state_dict']['criterion.memory_bank.bank'][:4])


def test_rejects_a_config_without_encoder_export(tmp_path):
    tool = _tool()
    cfg = small_cfg(CONFIG, tmp_path, 2)
    cfg.custom_hooks = []
    with pytest.raises(ValueError, match='EncoderExportHook'):
        tool.build_runner(cfg, str(CONFIG))


@pytest.mark.slow
def test_command_line(tmp_path):
    """The tool as a user runs it."""
    import subprocess

    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1')
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / 'tools/pretrain.py'),
            str(CONFIG),
            '--work-dir',
            str(tmp_path),
            '--cfg-options',
            'train_cfg.max_iters=1',
            'train_dataloader.batch_size=2',
            'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False',
            'model.queue_size=8',
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert f'pretrained encoder -> {tmp_path}/encoder.pth' in out.stdout
