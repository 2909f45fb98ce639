"""benchmarks/step_bench.py (and the scripts built on it): the switches reach the model and
the optimiser wrappers, a step is timed and its memory measured; reference_step.py reads the
reference's settings from its files."""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, 'benchmarks'))


def _load(name):
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(ROOT, 'benchmarks', f'{name}.py')
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


step_bench = _load('step_bench')
SAC = os.path.join(ROOT, 'configs/demo/sac_unet-resnet18_400it_synthetic-96x192.py')


def test_switches_reach_the_model_and_the_wrappers():
    cfg = step_bench.load(SAC, amp='bf16', channels_last=True, backward_groups='per-term')
    assert cfg.model.channels_last is True
    assert cfg.model.backward_groups == [['src'], ['sac']]
    assert cfg.optim_wrapper.type == 'uda.CPUAmpOptimWrapper'
    model, wrapper, iteration = step_bench.build(cfg)
    assert iteration == cfg.model.teacher.start_iter  # SAC is active
    assert wrapper.cast_dtype == torch.bfloat16
    convs = [m.weight for m in model.student.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)


@pytest.mark.slow
def test_a_sac_step_is_timed_and_its_memory_measured():
    args = step_bench.parse_args([SAC, '--steps', '1', '--warmup', '0', '--size', '32', '64'])
    out = step_bench.run(args)
    assert out['step_s'] > 0 and out['steps'] == 1 and out['size'] == [32, 64]
    args = step_bench.parse_args([SAC, '--memory', '--size', '32', '64', '--batch', '2'])
    assert step_bench.run(args)['peak_mib'] >= 0


def test_reference_settings_are_read_from_its_files(tmp_path):
    reference_step = _load('reference_step')
    (tmp_path / 'core').mkdir()
    (tmp_path / 'configs').mkdir()
    (tmp_path / 'core' / 'config.py').write_text(
        '__C.MODEL.LR = 3e-4\n__C.MODEL.LR_TARGET = 1.0 # multiplier\n'
        '__C.MODEL.CONF_POOL = "avg_pool"\n__C.TRAIN.GROUP_SIZE = 2\n'
    )
    (tmp_path / 'configs' / 'deeplabv2_resnet101_train.yaml').write_text(
        'MODEL:\n  LR: 0.00025\n  LR_TARGET: 5.\n'
    )
    cfg = reference_step.reference_cfg(str(tmp_path))
    assert cfg.LR == pytest.approx(2.5e-4) and cfg.LR_TARGET == 5.0
    assert cfg.CONF_POOL == 'avg_pool' and cfg.ARCH == 'deeplabv2_resnet101'
    assert not hasattr(cfg, 'GROUP_SIZE')
    with pytest.raises(SystemExit, match='da-sac'):
        reference_step.reference_model(str(tmp_path))
