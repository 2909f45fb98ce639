"""randomness.deterministic (issue 25, item 7): through to torch.use_deterministic_algorithms,
the cuDNN flags and CUBLAS_WORKSPACE_CONFIG; an op without a deterministic kernel is one
`error:` line naming it. Checked on the CPU with ops that have no deterministic kernel there
either (max_unpool2d, put_)."""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

from tests.conftest import toy_runner_cfg
from uda.engine.config import build_checked_runner, run_tool
from uda.engine.determinism import CUBLAS_WORKSPACE, deterministic_mode


@pytest.fixture(autouse=True)
def restore_flags():
    state = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    yield
    torch.use_deterministic_algorithms(state[0], warn_only=state[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = state[2:]


def _unpool():
    x = torch.randn(1, 1, 4, 4)
    return F.max_unpool2d(*F.max_pool2d(x, 2, return_indices=True), 2)


def _runner(tmp_path, deterministic):
    cfg = toy_runner_cfg(str(tmp_path))
    cfg['randomness'] = dict(seed=0, deterministic=deterministic)
    cfg['env_cfg'] = dict(cudnn_benchmark=True, dist_cfg=dict(backend='gloo'))
    return build_checked_runner(Config(cfg), ('train',), 'toy.py')


def test_switch_reaches_torch_cudnn_and_cublas(tmp_path, monkeypatch):
    monkeypatch.delenv('CUBLAS_WORKSPACE_CONFIG', raising=False)
    torch.use_deterministic_algorithms(False)
    _runner(tmp_path / 'off', False)
    assert not torch.are_deterministic_algorithms_enabled()
    assert 'CUBLAS_WORKSPACE_CONFIG' not in os.environ
    _runner(tmp_path / 'on', True)
    assert torch.are_deterministic_algorithms_enabled()
    assert not torch.is_deterministic_algorithms_warn_only_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert os.environ['CUBLAS_WORKSPACE_CONFIG'] == CUBLAS_WORKSPACE
    with pytest.raises(RuntimeError, match='max_unpooling2d'):
        _unpool()
    _runner(tmp_path / 'warn', 'warn')
    assert torch.is_deterministic_algorithms_warn_only_enabled()
    with pytest.warns(UserWarning, match='max_unpooling2d.*deterministic'):
        _unpool()
    with pytest.raises(ValueError, match=r"randomness.deterministic='yes'.*'warn'"):
        deterministic_mode(dict(randomness=dict(deterministic='yes')))


@pytest.mark.parametrize(
    'op,name',
    [
        (_unpool, 'max_unpooling2d_forward_out'),
        (lambda: torch.zeros(3).put_(torch.tensor([0, 0]), torch.tensor([1.0, 2.0])), 'put_'),
    ],
    ids=['max_unpool2d', 'put_'],
)
def test_op_without_deterministic_kernel_is_one_error_line(op, name, monkeypatch, capsys):
    monkeypatch.delenv('UDA_DEBUG', raising=False)

    def main():
        torch.use_deterministic_algorithms(True)
        op()

    with pytest.raises(SystemExit) as code:
        run_tool(main)
    err = capsys.readouterr().err.splitlines()
    assert code.value.code == 2 and len(err) == 2
    assert err[0] == (
        f'error: randomness.deterministic=True, but {name} has no deterministic implementation '
        "on this device. Set randomness.deterministic='warn' to run it anyway with a warning "
        '(that op then stays non-deterministic), or False (runs of one seed then differ up to '
        'GPU atomics), or replace the layer that calls it (e.g. bilinear upsampling has no '
        "deterministic CUDA backward: mode='nearest' has)."
    )
