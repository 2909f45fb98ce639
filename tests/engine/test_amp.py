"""Mixed precision: every registered term trains finite under bf16 / fp16 autocast on the CPU,
and the ``amp`` switch rewrites every optimiser wrapper of a config."""

import math

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper, OptimWrapperDict

from tests.conftest import toy_batch
from tests.methods.test_term_sweep import SWEPT_TERMS, term_model_and_wrapper
from uda.engine.amp import CPUAmpOptimWrapper, apply_amp
from uda.registry import OPTIM_WRAPPERS

BF16 = dict(type='uda.CPUAmpOptimWrapper', dtype='bfloat16')
FP16 = dict(type='uda.CPUAmpOptimWrapper', dtype='float16')


def _two_steps(name, wrapper_cfg):
    torch.manual_seed(0)
    model, wrapper = term_model_and_wrapper(name, wrapper_cfg)
    dtypes = []
    hook = model.student.conv.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    before = [p.detach().clone() for p in model.student.parameters()]
    for step in range(2):
        log_vars = model.train_step(toy_batch(seed=step), wrapper)
        for key, value in log_vars.items():
            assert math.isfinite(float(value)), (name, key, value)
    hook.remove()
    changed = any(not torch.equal(a, b) for a, b in zip(before, model.student.parameters()))
    assert changed, f'{name}: the student did not train'
    assert all(p.dtype == torch.float32 for p in model.parameters()), 'weights must stay fp32'
    return model, wrapper, dtypes


@pytest.mark.parametrize('name', SWEPT_TERMS)
def test_every_term_trains_finite_under_bf16_autocast(name):
    model, wrapper, dtypes = _two_steps(name, BF16)
    # Every student forward of the step (source, target, views, mixed images) ran in bf16.
    assert dtypes and all(d == torch.bfloat16 for d in dtypes), (name, dtypes)
    for w in wrapper.values():
        assert isinstance(w, CPUAmpOptimWrapper) and w.loss_scaler is None


@pytest.mark.parametrize('name', ['SourceCE', 'SACSelfTraining', 'OutputAdversarial'])
def test_fp16_steps_through_the_cpu_grad_scaler(name):
    if name not in SWEPT_TERMS:
        pytest.skip(f'{name} is not registered')
    model, wrapper, dtypes = _two_steps(name, FP16)
    assert dtypes and all(d == torch.float16 for d in dtypes)
    for w in wrapper.values():  # the student's and (adversarial terms) the discriminators'
        assert w.loss_scaler is not None
        assert 'loss_scaler' in w.state_dict()


def test_grad_scaler_skips_the_step_on_inf_and_lowers_the_scale():
    p = torch.nn.Parameter(torch.ones(3))
    w = CPUAmpOptimWrapper(dtype='float16', optimizer=torch.optim.SGD([p], lr=0.1))
    scale = w.loss_scaler.get_scale()
    w.backward((p * float('inf')).sum())
    w.step()
    assert torch.equal(p.detach(), torch.ones(3)), 'an inf gradient must skip the step'
    assert w.loss_scaler.get_scale() < scale
    w.zero_grad()
    w.backward(p.sum())
    w.step()
    assert torch.allclose(p.detach(), torch.full((3,), 0.9)), 'gradients are unscaled'


def test_bf16_clip_grad_and_state_round_trip():
    p = torch.nn.Parameter(torch.ones(2))
    w = CPUAmpOptimWrapper(
        dtype='float16',
        optimizer=torch.optim.SGD([p], lr=1.0),
        clip_grad=dict(max_norm=0.5),
    )
    w.backward((p * 100).sum())
    w.step()  # unscaled then clipped to norm 0.5
    assert torch.allclose(p.detach().sub(1).norm(), torch.tensor(0.5), atol=1e-4)
    state = w.state_dict()
    w2 = CPUAmpOptimWrapper(dtype='float16', optimizer=torch.optim.SGD([p], lr=1.0))
    w2.load_state_dict(state)
    assert w2.loss_scaler.get_scale() == w.loss_scaler.get_scale()


def test_bad_dtype_is_rejected():
    with pytest.raises(ValueError, match='bfloat16'):
        CPUAmpOptimWrapper(dtype='float64', optimizer=torch.optim.SGD([torch.zeros(1)], lr=1))


def _cfg(optim):
    return Config(dict(optim_wrapper=optim))


@pytest.mark.parametrize(
    'cuda, expect', [(False, 'uda.CPUAmpOptimWrapper'), (True, 'AmpOptimWrapper')]
)
def test_switch_converts_every_wrapper_of_the_adapter_constructor(cuda, expect):
    cfg = _cfg(
        dict(
            constructor='AdapterOptimWrapperConstructor',
            student=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1)),
            discriminators=dict(optimizer=dict(type='Adam', lr=1e-4), clip_grad=None),
        )
    )
    apply_amp(cfg, 'bf16', cuda=cuda)
    for name in ('student', 'discriminators'):
        assert cfg.optim_wrapper[name].type == expect
        assert cfg.optim_wrapper[name].dtype == 'bfloat16'
    assert cfg.optim_wrapper.constructor == 'AdapterOptimWrapperConstructor'
    assert OPTIM_WRAPPERS.get(expect) is not None


def test_switch_reads_cfg_amp_and_converts_a_plain_wrapper():
    cfg = _cfg(dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1)))
    cfg.amp = 'fp16'
    apply_amp(cfg, cuda=False)
    assert cfg.optim_wrapper.type == 'uda.CPUAmpOptimWrapper'
    assert cfg.optim_wrapper.dtype == 'float16'
    built = OPTIM_WRAPPERS.build(
        dict(cfg.optim_wrapper, optimizer=torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], 1))
    )
    assert isinstance(built, CPUAmpOptimWrapper) and built.cast_dtype == torch.float16


def test_switch_off_and_bad_values():
    cfg = _cfg(dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1)))
    apply_amp(cfg, None)
    assert cfg.optim_wrapper.type == 'OptimWrapper'
    with pytest.raises(ValueError, match="'bf16' or 'fp16'"):
        apply_amp(cfg, 'int8')
    cfg = _cfg(dict(type='ZeroRedundancyOptimizer', optimizer=dict(type='SGD', lr=0.1)))
    with pytest.raises(ValueError, match='optim_wrapper'):
        apply_amp(cfg, 'bf16')


def test_adapter_phases_accept_a_plain_amp_wrapper():
    """A single (non-dict) CPU AMP wrapper: the student phase is autocast too."""
    model, _ = term_model_and_wrapper('SourceCE')
    params = [p for n, p in model.named_parameters() if not n.startswith('teacher')]
    wrapper = CPUAmpOptimWrapper(optimizer=torch.optim.SGD(params, lr=0.01))
    assert not isinstance(wrapper, OptimWrapperDict) and isinstance(wrapper, OptimWrapper)
    log_vars = model.train_step(toy_batch(), wrapper)
    assert math.isfinite(float(log_vars['loss']))


def test_cfg_options_switch_on_a_demo_config(tmp_path):
    """`--cfg-options amp=bf16` (what benchmarks/sweep.py's sac-bf16 preset passes)."""
    from uda.engine.config import load_config

    cfg = load_config(
        'configs/demo/sac_unet-resnet18_400_synthetic-96x192.py',
        {'amp': 'bf16'},
        str(tmp_path),
    )
    apply_amp(cfg, cuda=False)
    assert cfg.optim_wrapper.type == 'uda.CPUAmpOptimWrapper'
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
