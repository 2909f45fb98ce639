"""A rank that dies or hangs (issue 25, item 5): the survivor exits within the configured
timeout with one error naming the rank; a run continues with --resume on another number of
processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest
import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.hooks import Hook

from tests.conftest import toy_runner_cfg

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))


def test_silent_ranks_are_the_ones_that_never_check_in():
    from uda.engine.rank_failure import silent_ranks

    store = dist.HashStore()
    store.set('uda/failed/2', '0')  # rank 2 hit the same failure and checked in
    start = time.monotonic()
    assert silent_ranks(store, 0, 4, grace_s=0.5) == [1, 3]
    assert 0.5 <= time.monotonic() - start < 5
    assert store.check(['uda/failed/0'])  # this rank checked in for the others
    store.set('uda/failed/1', '0')
    store.set('uda/failed/3', '0')
    assert silent_ranks(store, 0, 4, grace_s=30) == []  # no wait when all answered


SCRIPT = """
import os, signal, sys
sys.path.insert(0, {root!r})
import torch
import torch.distributed as dist
from mmengine.config import Config
from uda.engine.config import run_tool
from uda.engine.dist import average_gradients, prepare_distributed


def main():
    cfg = Config(dict(launcher='pytorch', model=dict(type='Toy'),
                      env_cfg=dict(dist_cfg=dict(backend='gloo', timeout={timeout}))))
    prepare_distributed(cfg)
    p = torch.nn.Parameter(torch.ones(3))
    for step in range(100000):
        p.grad = torch.ones(3)
        average_gradients([p])
        if step == 2 and dist.get_rank() == 1:
            print('rank 1 stops', flush=True)
            os.kill(os.getpid(), signal.{signal})


run_tool(main)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize('how', ['SIGKILL', 'SIGSTOP'], ids=['rank dies', 'rank hangs'])
def test_survivor_exits_with_an_error_naming_the_dead_rank(tmp_path, how):
    timeout = 8
    script = tmp_path / 'ranks.py'
    script.write_text(SCRIPT.format(root=ROOT, timeout=timeout, signal=how))
    env = dict(
        os.environ,
        MASTER_ADDR='127.0.0.1',
        MASTER_PORT=str(_free_port()),
        WORLD_SIZE='2',
        OMP_NUM_THREADS='1',
    )
    env.pop('UDA_DEBUG', None)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script)],
            env=dict(env, RANK=str(r), LOCAL_RANK=str(r)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(2)
    ]
    try:
        assert procs[1].stdout.readline().strip() == 'rank 1 stops'
        stopped = time.monotonic()
        _, err = procs[0].communicate(timeout=300)
        elapsed = time.monotonic() - stopped
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert procs[0].returncode == 2, err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith('error: ')]
    assert len(lines) == 1 and 'Traceback' not in err, err[-3000:]
    assert lines[0].startswith('error: rank 0: a collective operation failed (')
    assert 'rank 1 of 2 did not answer (checked for 10 s): it died or hangs' in lines[0]
    assert '--resume' in lines[0]
    # Within the configured timeout (a hang) plus the 10 s check-in, with slack for a busy CPU.
    assert elapsed < timeout + 10 + 60, elapsed


@pytest.mark.slow
def test_resume_on_another_number_of_processes(tmp_path):
    """2 processes (torchrun, gloo) to iteration 2, then --resume on 1 process to iteration 4.

    With ``total_batch_size`` (issue 26) the recipe is the same on any number of processes:
    the 2-process run loads 2 images per branch and process, the 1-process resume 4, and both
    train at the config's learning rate; the resumed run continues at the checkpoint's
    iteration with its optimiser state and schedule.
    """
    from mmengine.runner import Runner

    from tests.engine.test_ddp import _torchrun
    from uda.engine.dist import prepare_distributed

    cfg = toy_runner_cfg(str(tmp_path / 'ddp'), max_iters=2, val_interval=2)
    cfg.pop('work_dir')
    cfg['val_evaluator'].pop('out_file')
    cfg['total_batch_size'] = 4
    states = _torchrun(tmp_path, Config(cfg), _free_port())
    assert {s['batch'] for s in states.values()} == {2}, states.keys()
    assert (tmp_path / 'ddp' / 'iter_2.pth').is_file()
    saved = torch.load(tmp_path / 'ddp' / 'iter_2.pth', map_location='cpu', weights_only=False)
    momentum = saved['optimizer']['state']

    single = toy_runner_cfg(str(tmp_path / 'ddp'), max_iters=4, val_interval=2)
    single.update(resume=True, load_from=None, total_batch_size=4)
    single_cfg = Config(single)
    prepare_distributed(single_cfg)
    assert single_cfg.train_dataloader.batch_size == 4
    runner = Runner.from_cfg(single_cfg)
    seen = {}

    def record(*_args, **_kwargs):
        if 'lr' not in seen:
            optimizer = runner.optim_wrapper.optimizer
            seen['lr'] = optimizer.param_groups[0]['lr']
            seen['momentum'] = {k: v['momentum_buffer'].clone() for k, v in optimizer.state.items()}

    runner.register_hook(_Call(record), priority='VERY_HIGH')
    runner.train()
    assert runner.iter == 4
    assert runner.train_dataloader.batch_size == 4
    assert seen['lr'] == pytest.approx(0.01)  # the reference lr: no scaling at 4 = 1 x 4
    # The optimiser state of the 2-process run is what the resumed run starts from.
    assert len(seen['momentum']) == len(momentum)
    for buf, saved_state in zip(seen['momentum'].values(), momentum.values()):
        assert torch.equal(buf, saved_state['momentum_buffer'])
    assert (tmp_path / 'ddp' / 'iter_4.pth').is_file()
    text = (tmp_path / 'ddp' / 'last_checkpoint').read_text()
    assert text.strip().endswith('iter_4.pth')


class _Call(Hook):
    """Calls ``fn`` before each training iteration (after the resume has loaded the state)."""

    def __init__(self, fn):
        self.fn = fn

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.fn()
