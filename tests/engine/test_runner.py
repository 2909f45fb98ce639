"""The mmengine Runner end to end: smoke, resume (torch >= 2.6) and seeded reproducibility."""

import json
import os

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

import uda.engine  # noqa: F401  (checkpoint loader)
from tests.conftest import toy_runner_cfg


def _run(cfg_dict, **kw):
    runner = Runner.from_cfg(Config(cfg_dict))
    runner.train()
    return runner


def _losses(work_dir):
    # The scalars file of the LocalVisBackend holds one JSON line per logged iteration.
    # Each run writes into a <timestamp>/ folder; read them in chronological order.
    paths = sorted(
        os.path.join(root, f)
        for root, _, files in os.walk(work_dir)
        for f in files
        if f == 'scalars.json'
    )
    found = []
    for path in paths:
        with open(path) as fh:
            found += [json.loads(line) for line in fh if '"loss"' in line]
    return [(d['iter'], d['loss']) for d in found]


def test_smoke_two_iterations_and_validation(tmp_path):
    runner = _run(toy_runner_cfg(str(tmp_path)))
    assert runner.iter == 2
    report = json.loads((tmp_path / 'metrics.json').read_text())
    assert 0 <= report['mIoU'] <= 100 and report['num_images'] == 4
    assert (tmp_path / 'iter_2.pth').is_file()
    # Image panels (input / GT / prediction) were written by the visualisation hook.
    pngs = [f for _, _, fs in os.walk(tmp_path) for f in fs if f.endswith('.png')]
    assert any(p.startswith('train_source') for p in pngs), pngs
    assert any(p.startswith('val_prediction') for p in pngs), pngs


def test_resume_continues_from_checkpoint(tmp_path):
    first = tmp_path / 'a'
    _run(toy_runner_cfg(str(first), max_iters=2, val_interval=10))
    ckpt = first / 'iter_2.pth'
    state = torch.load(ckpt, weights_only=False)
    assert 'message_hub' in state  # the objects torch>=2.6's default loader rejects

    cfg = toy_runner_cfg(str(first), max_iters=4, val_interval=10)
    cfg.update(resume=True, load_from=str(ckpt))
    runner = Runner.from_cfg(Config(cfg))
    runner.train()
    assert runner.iter == 4
    # Optimiser state was restored (momentum buffers exist and training continued).
    assert runner.optim_wrapper.optimizer.state
    losses = _losses(first)
    assert [it for it, _ in losses][-2:] == [3, 4]


def test_same_seed_same_first_losses(tmp_path):
    a = _losses(_run(toy_runner_cfg(str(tmp_path / 'a'), max_iters=3, val_interval=10)).work_dir)
    b = _losses(_run(toy_runner_cfg(str(tmp_path / 'b'), max_iters=3, val_interval=10)).work_dir)
    assert len(a) == 3 and a == b
    cfg = toy_runner_cfg(str(tmp_path / 'c'), max_iters=3, val_interval=10)
    cfg['randomness'] = dict(seed=1)
    c = _losses(_run(cfg).work_dir)
    assert c != a


def test_auto_scale_lr_scales_every_optimiser_of_the_adapter(tmp_path):
    """The linear scaling rule (``auto_scale_lr``): the Runner multiplies the learning rate of
    every wrapper of the adapter's OptimWrapperDict (student and discriminators) by the total
    batch (ranks x images per branch) over ``base_batch_size``, before the schedules read it."""
    from tests.conftest import toy_adversarial_runner_cfg

    cfg = toy_adversarial_runner_cfg(str(tmp_path), max_iters=1, val_interval=10)
    cfg['auto_scale_lr'] = dict(enable=True, base_batch_size=1)  # batch 2 per branch: x2
    runner = Runner.from_cfg(Config(cfg))
    runner.train()
    base = {name: scheds[0].base_values for name, scheds in runner.param_schedulers.items()}
    assert base['student'] == pytest.approx([0.02])
    assert base['discriminators'] == pytest.approx([2e-4])
