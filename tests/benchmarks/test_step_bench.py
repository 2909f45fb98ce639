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
SAC = os.path.join(ROOT, 'configs/demo/sac_unet-resnet18_400_synthetic-96x192.py')


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


def test_segmentor_option_replaces_the_network():
    base = os.path.join(ROOT, 'configs/_base_/models/deeplabv2_resnet101.py')
    cfg = step_bench.load(SAC, segmentor=base)
    seg = cfg.model.segmentor
    assert seg.arch == 'DeepLabV2' and seg.encoder_name == 'resnet101'
    assert 'decoder_channels' not in seg  # replaced, not merged with the UNet's
    assert seg.num_classes == 19 and cfg.model.data_preprocessor.size_divisor == 8


def test_memory_matrix_appends_cells_and_skips_done_ones(tmp_path, monkeypatch, capsys):
    step_memory = _load('step_memory')
    runs = []

    def fake_cell(method, encoder, variant, args):
        runs.append((method, encoder, variant))
        return dict(
            method=method, encoder=encoder, variant=variant, held_mib=1000.0, peak_mib=100.0
        )

    monkeypatch.setattr(step_memory, 'matrix_cell', fake_cell)
    jsonl = str(tmp_path / 'm.jsonl')
    argv = ['step_memory.py', '--matrix', '--methods', 'ABN', 'SAC', '--encoders', 'ViT-S']
    argv += ['--variants', 'plain', 'checkpointing', '--jsonl', jsonl, '--skip', 'ViT-S:SAC']
    monkeypatch.setattr(sys, 'argv', argv)
    step_memory.main()
    assert runs == [('ABN', 'ViT-S', 'plain'), ('ABN', 'ViT-S', 'checkpointing')]
    out = capsys.readouterr().out
    assert '| ABN | ViT-S | 1100 (1000 + 100) | 1100 (1000 + 100) |' in out
    assert '| SAC | ViT-S | not run | not run |' in out
    runs.clear()
    step_memory.main()  # the cells in the file are not measured again
    assert runs == []


def test_matrix_encoders_are_dinov2_sizes():
    step_memory = _load('step_memory')
    large = step_memory.ENCODERS['ViT-L'][1]
    assert large['model.segmentor.encoder_name'] == 'tu-vit_large_patch14_dinov2'
    assert large['model.segmentor.encoder_kwargs.patch_size'] == 16
    assert step_memory.VARIANTS['checkpointing'] == {
        'model.segmentor.activation_checkpointing': True
    }
