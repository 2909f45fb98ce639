"""Multi-process training through the Runner's launcher (torchrun + gloo on CPU), and the
data-parallel adversarial step against a single-process reference."""

import json
import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.config import Config
from mmengine.optim import OptimWrapper

from tests.conftest import toy_batch, toy_runner_cfg
from uda.engine import AdapterDataParallel, AdapterOptimWrapperConstructor
from uda.registry import MODELS

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))

# Run by torchrun: registers the toy segmentor (tests.conftest) and a hook that saves every
# rank's weights before and after training, then runs tools/train.py.
LAUNCHER = """import os, runpy, sys
sys.path.insert(0, {root!r})
import torch
from mmengine.hooks import Hook
import tests.conftest  # noqa: F401
from uda.registry import HOOKS


@HOOKS.register_module()
class RankStateHook(Hook):
    def _save(self, runner, when):
        torch.save(dict(wrapper=type(runner.model).__name__,
                        batch=runner.train_dataloader.batch_size,
                        world=runner.world_size,
                        state=runner.model.module.state_dict()),
                   os.path.join(runner.work_dir, f'{{when}}_rank{{runner.rank}}.pt'))

    def before_train(self, runner):
        self._save(runner, 'before')

    def after_train(self, runner):
        self._save(runner, 'after')


runpy.run_path({train!r}, run_name='__main__')
"""


def _torchrun(tmp_path, cfg: Config, port: int) -> dict:
    """Train ``cfg`` on 2 CPU processes; returns each rank's saved states."""
    cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [dict(type='RankStateHook')]
    path = tmp_path / 'config.py'
    cfg.dump(str(path))
    launcher = tmp_path / 'launch.py'
    launcher.write_text(LAUNCHER.format(root=ROOT, train=os.path.join(ROOT, 'tools/train.py')))
    work_dir = tmp_path / 'ddp'
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    out = subprocess.run(
        [
            sys.executable,
            '-m',
            'torch.distributed.run',
            '--nproc_per_node',
            '2',
            '--master_port',
            str(port),
            str(launcher),
            str(path),
            '--launcher',
            'pytorch',
            '--work-dir',
            str(work_dir),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    return {
        f'{when}{r}': torch.load(work_dir / f'{when}_rank{r}.pt', weights_only=False)
        for when in ('before', 'after')
        for r in (0, 1)
    }


def _assert_ranks_equal(states: dict) -> None:
    assert states['after0']['wrapper'] == 'AdapterDataParallel'
    a, b = states['after0']['state'], states['after1']['state']
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f'{k} differs between the ranks'


@pytest.mark.slow
def test_two_process_ddp_training(tmp_path):
    cfg = toy_runner_cfg(str(tmp_path / 'ddp'), max_iters=2, val_interval=2)
    cfg.pop('work_dir')
    cfg['val_evaluator'].pop('out_file')
    states = _torchrun(tmp_path, Config(cfg), 29517)
    report = json.loads((tmp_path / 'ddp' / 'metrics.json').read_text())
    assert report['num_images'] == 4  # the val set, split over 2 ranks and gathered
    assert (tmp_path / 'ddp' / 'iter_2.pth').is_file()
    # ABN: one optimiser through the same wrapper; weights and BN statistics agree.
    _assert_ranks_equal(states)


@pytest.mark.slow
def test_two_process_test_tool(tmp_path):
    """tools/test.py under torchrun (gloo without CUDA): the test set is split over the ranks
    and gathered, and rank 0 writes the report."""
    cfg = toy_runner_cfg(str(tmp_path / 'train'), max_iters=2, val_interval=2)
    cfg.pop('work_dir')
    cfg['val_evaluator'].pop('out_file')
    cfg['test_dataloader'], cfg['test_evaluator'] = cfg['val_dataloader'], cfg['val_evaluator']
    cfg['test_cfg'] = dict(type='TestLoop')
    runner_cfg = Config(cfg)
    runner_cfg.work_dir = str(tmp_path / 'train')
    from mmengine.runner import Runner

    runner = Runner.from_cfg(runner_cfg)
    runner.train()
    path = tmp_path / 'config.py'
    Config(cfg).dump(str(path))
    launcher = tmp_path / 'launch.py'
    launcher.write_text(LAUNCHER.format(root=ROOT, train=os.path.join(ROOT, 'tools/test.py')))
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    out = subprocess.run(
        [
            sys.executable,
            '-m',
            'torch.distributed.run',
            '--nproc_per_node',
            '2',
            '--master_port',
            '29547',
            str(launcher),
            str(path),
            str(tmp_path / 'train' / 'iter_2.pth'),
            '--launcher',
            'pytorch',
            '--work-dir',
            str(tmp_path / 'test'),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    report = json.loads((tmp_path / 'test' / 'metrics.json').read_text())
    assert report['num_images'] == 4


@pytest.mark.slow
def test_two_process_sac_keeps_student_and_teacher_identical(tmp_path):
    """SAC under DDP: the momentum teacher is initialised and updated on every rank (never
    communicated) and stays identical across ranks, as does the student."""
    terms = dict(src=dict(type='SourceCE'), sac=dict(type='SACSelfTraining'))
    labellers = dict(sac=dict(type='SACLabeller', num_images=1, num_views=2))
    cfg = toy_runner_cfg(
        str(tmp_path / 'ddp'), max_iters=4, val_interval=4, terms=terms, labellers=labellers
    )
    cfg.pop('work_dir')
    cfg['val_evaluator'].pop('out_file')
    cfg['model']['teacher'] = dict(momentum=0.9, interval=1, start_iter=2)
    states = _torchrun(tmp_path, Config(cfg), 29537)
    _assert_ranks_equal(states)
    after, before = states['after0']['state'], states['before0']['state']
    assert bool(after['teacher.ready'])
    teacher = [k for k in after if k.startswith('teacher.') and after[k].is_floating_point()]
    assert teacher and any(not torch.equal(after[k], before[k]) for k in teacher)


@pytest.mark.slow
def test_two_process_advent_config_keeps_ranks_identical(tmp_path):
    cfg = Config.fromfile(
        os.path.join(ROOT, 'configs/advent/advent_unet-resnet18_400_synthetic-96x192.py')
    )
    branches = cfg.train_dataloader.dataset.branches
    for ds in (branches.source, branches.target, cfg.val_dataloader.dataset):
        ds.size, ds.num_samples = (32, 64), 8
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        loader.update(batch_size=1, num_workers=0, persistent_workers=False)
    cfg.val_dataloader.dataset.num_samples = 4
    cfg.train_cfg.update(max_iters=3, val_interval=3)
    states = _torchrun(tmp_path, cfg, 29527)
    _assert_ranks_equal(states)
    before, after = states['before0']['state'], states['after0']['state']
    for prefix in ('student.', 'terms.ent.discriminator.main.', 'terms.ent.discriminator.aux.'):
        keys = [k for k in after if k.startswith(prefix) and after[k].is_floating_point()]
        assert keys and any(not torch.equal(before[k], after[k]) for k in keys), prefix
    report = json.loads((tmp_path / 'ddp' / 'metrics.json').read_text())
    assert report['num_images'] == 4


# ---------------------------------------------------------------- against a reference
STEPS = 3


def _toy_adversarial_adapter():
    return MODELS.build(
        dict(
            type='Adapter',
            segmentor=dict(type='ToySegmentor'),
            data_preprocessor=dict(type='SegDataPreprocessor', size_divisor=1),
            terms=dict(
                src=dict(type='SourceCE'),
                # Large weights, so that a wrong adversarial gradient shows in the weights.
                ent=dict(
                    type='EntropyAdversarial',
                    weight=0.5,
                    aux_weight=0.1,
                    discriminator=dict(type='FCDiscriminator', channels=(8, 8, 8, 8)),
                ),
                minent=dict(type='MinEnt', weight=0.5, aux_weight=0),
            ),
            bn_policy='target_only',
        )
    )


def _wrappers(model):
    return AdapterOptimWrapperConstructor(
        dict(
            student=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.05, momentum=0.9)),
            discriminators=dict(
                type='OptimWrapper',
                # eps well above float32 noise: Adam divides by sqrt(v), so with
                # the default 1e-8 a near-zero gradient turns reduction-order noise
                # (1e-9) into updates of up to lr, and no tolerance holds.
                optimizer=dict(type='Adam', lr=1e-2, betas=(0.9, 0.99), eps=1e-3),
            ),
        )
    )(model)


def _batch(step: int, rank: int) -> dict:
    return toy_batch(seed=100 * step + rank)


def _worker(rank: int, init_file: str, out_dir: str, overlap: bool = True) -> None:
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=2)
    try:
        torch.manual_seed(rank)  # rank 1 starts elsewhere: the wrapper broadcasts rank 0's
        model = _toy_adversarial_adapter()
        ddp = AdapterDataParallel(model, overlap=overlap, bucket_cap_mb=1e-6 if overlap else 25)
        ddp.train()
        ow = _wrappers(model)
        for step in range(STEPS):
            ddp.train_step(_batch(step, rank), ow)
        torch.save(model.state_dict(), os.path.join(out_dir, f'rank{rank}.pt'))
    finally:
        dist.destroy_process_group()


def _average_grads(params_per_rank: list) -> None:
    for ps in zip(*params_per_rank):
        grads = [p.grad for p in ps if p.grad is not None]
        if grads:
            mean = sum(grads) / len(ps)
            for p in ps:
                p.grad = mean.clone()


def _reference(average: bool = True) -> list:
    """Two copies (one per rank: own BN statistics and term caches) stepped by hand with the
    mean of their gradients: the student on all segmentor losses, then the discriminators.
    ``average=False``: each copy steps on its own gradients (data parallelism without
    communication)."""
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        models.append(_toy_adversarial_adapter().train())
    opts = [_wrappers(m) for m in models]
    discs = [m.terms['ent'].discriminator for m in models]
    for step in range(STEPS):
        for rank, m in enumerate(models):
            data = m.data_preprocessor(_batch(step, rank), True)
            loss, _ = m.parse_losses(m.loss(data['inputs'], data['data_samples']))
            loss.backward()
            discs[rank].zero_grad(set_to_none=True)  # the segmentor phase trains no D
        if average:
            _average_grads([list(m.student.parameters()) for m in models])
        for o in opts:
            o['student'].optimizer.step()
            o['student'].optimizer.zero_grad()
        for m in models:
            d_loss, _ = m.parse_losses(m.terms['ent'].phase_loss('discriminators', None))
            d_loss.backward()
        if average:
            _average_grads([list(d.parameters()) for d in discs])
        for o in opts:
            o['discriminators'].optimizer.step()
            o['discriminators'].optimizer.zero_grad()
        with torch.no_grad():  # BN statistics: the mean over the ranks
            if not average:
                continue
            for bufs in zip(*[list(m.buffers()) for m in models]):
                if bufs[0].is_floating_point():
                    mean = sum(bufs) / len(bufs)
                    for b in bufs:
                        b.copy_(mean)
    return models


@pytest.mark.slow
@pytest.mark.parametrize('overlap', [True, False], ids=['overlapped', 'after-backward'])
def test_two_process_adversarial_step_matches_a_single_process_reference(tmp_path, overlap):
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    mp.spawn(_worker, args=(str(tmp_path / 'store'), str(tmp_path), overlap), nprocs=2)
    ranks = [torch.load(tmp_path / f'rank{r}.pt') for r in (0, 1)]
    ref = _reference()[0].state_dict()
    torch.manual_seed(0)
    init = _toy_adversarial_adapter().state_dict()
    for k, v in ref.items():
        assert torch.equal(ranks[0][k], ranks[1][k]), f'{k} differs between the ranks'
        assert torch.allclose(ranks[0][k].float(), v.float(), atol=1e-6), k
    disc = [k for k in ref if k.startswith('terms.ent.discriminator.main.')]
    assert any(not torch.equal(init[k], ref[k]) for k in disc), 'the discriminator did not train'
    # Without the averaging rank 0 would hold other weights: the comparison is sensitive.
    alone = _reference(average=False)[0].state_dict()
    for k in ('student.classifier.weight', 'terms.ent.discriminator.main.net.0.weight'):
        assert not torch.allclose(alone[k], ref[k], atol=1e-4), k


@pytest.mark.slow
def test_two_node_torchrun_rendezvous_with_linear_lr_scaling(tmp_path):
    """Multi-node launch as on a cluster: two torchrun invocations (one per "node", here both
    on localhost) meet through the c10d rendezvous (``--nnodes 2 --rdzv_backend c10d
    --rdzv_endpoint HOST:PORT``), one process each. The ranks train identically, and
    ``auto_scale_lr`` scales the base learning rate by the total batch (2 ranks x 2 images
    per branch over base_batch_size 2: x2) in every optimiser wrapper."""
    cfg = toy_runner_cfg(str(tmp_path / 'ddp'), max_iters=2, val_interval=2)
    cfg.pop('work_dir')
    cfg['val_evaluator'].pop('out_file')
    cfg['auto_scale_lr'] = dict(enable=True, base_batch_size=2)
    cfg = Config(cfg)
    cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [dict(type='RankStateHook')]
    path = tmp_path / 'config.py'
    cfg.dump(str(path))
    launcher = tmp_path / 'launch.py'
    launcher.write_text(LAUNCHER.format(root=ROOT, train=os.path.join(ROOT, 'tools/train.py')))
    work_dir = tmp_path / 'ddp'
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    node_args = [
        '--nnodes',
        '2',
        '--nproc_per_node',
        '1',
        '--rdzv_backend',
        'c10d',
        '--rdzv_endpoint',
        'localhost:29557',
        '--rdzv_id',
        'uda-two-nodes',
    ]
    procs = [
        subprocess.Popen(
            [sys.executable, '-m', 'torch.distributed.run', *node_args, str(launcher)]
            + [str(path), '--launcher', 'pytorch', '--work-dir', str(work_dir)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-4000:]
    states = {
        f'{when}{r}': torch.load(work_dir / f'{when}_rank{r}.pt', weights_only=False)
        for when in ('before', 'after')
        for r in (0, 1)
    }
    _assert_ranks_equal(states)
    ckpt = torch.load(work_dir / 'iter_2.pth', weights_only=False)
    assert ckpt['optimizer']['param_groups'][0]['lr'] == pytest.approx(0.02)  # 0.01 x 4 / 2


# ------------------------------------------- SAC and UniMatch against a single process
def _sac_adapter():
    # Chunked views and one backward pass per term: several backward passes per step, of
    # which only the last may launch the overlapped all-reduce.
    return MODELS.build(
        dict(
            type='Adapter',
            segmentor=dict(type='ToySegmentor'),
            data_preprocessor=dict(type='SegDataPreprocessor', size_divisor=1),
            teacher=dict(momentum=0.5, interval=1),
            labellers=dict(sac=dict(type='SACLabeller', num_views=2, num_images=1)),
            terms=dict(
                src=dict(type='SourceCE'),
                sac=dict(type='SACSelfTraining', log_per_class=False, views_per_pass=1),
            ),
            backward_groups=[['src'], ['sac']],
            bn_policy='train',
        )
    )


def _unimatch_adapter():
    cfg = Config.fromfile(os.path.join(ROOT, 'configs', '_base_', 'methods', 'unimatch.py'))
    model = cfg.model.to_dict()
    model.update(
        segmentor=dict(type='ToySegmentor'),
        data_preprocessor=dict(type='SegDataPreprocessor', size_divisor=1),
    )
    for labeller in model['labellers'].values():
        labeller['threshold'] = 0.0  # every pixel counts, so every loss has a gradient
    return MODELS.build(model)


METHODS = {
    'sac': (_sac_adapter, ('source', 'target'), ('source',)),
    'unimatch': (_unimatch_adapter, ('labeled', 'unlabeled', 'unlabeled_mix'), ('labeled',)),
}


def _method_batch(method: str, step: int, rank: int) -> dict:
    _, branches, labelled = METHODS[method]
    return toy_batch(branches, labelled=labelled, seed=100 * step + rank)


def _sgd(model):
    return OptimWrapper(torch.optim.SGD(model.student.parameters(), lr=0.5))


def _method_worker(rank: int, init_file: str, out_dir: str, method: str, overlap: bool) -> None:
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=2)
    try:
        torch.manual_seed(rank)  # rank 1 starts elsewhere: the wrapper broadcasts rank 0's
        model = METHODS[method][0]()
        # Tiny buckets: one per parameter, so several all-reduces overlap the backward pass.
        ddp = AdapterDataParallel(model, overlap=overlap, bucket_cap_mb=1e-6)
        ddp.train()
        if model.teacher is not None:
            model.teacher.init_from(model.student)
        ow = _sgd(model)
        torch.manual_seed(1000 + rank)  # the augmentation draws of this rank
        for step in range(STEPS):
            ddp.train_step(_method_batch(method, step, rank), ow)
            if model.teacher is not None:
                model.teacher.update(model.student)
        torch.save(model.state_dict(), os.path.join(out_dir, f'rank{rank}.pt'))
    finally:
        dist.destroy_process_group()


def _method_reference(method: str, average: bool = True) -> list:
    """Two copies (one per rank), each with the random stream of its rank, stepped by hand
    with the mean of their gradients; float buffers averaged after each step, then the EMA."""
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        models.append(METHODS[method][0]().train())
    for m in models:
        if m.teacher is not None:
            m.teacher.init_from(m.student)
    opts = [_sgd(m) for m in models]
    rng = []
    for rank in range(2):
        torch.manual_seed(1000 + rank)
        rng.append(torch.get_rng_state())
    for step in range(STEPS):
        for rank, m in enumerate(models):
            torch.set_rng_state(rng[rank])
            data = m.data_preprocessor(_method_batch(method, step, rank), True)
            loss, _ = m.parse_losses(m.loss(data['inputs'], data['data_samples']))
            loss.backward()
            rng[rank] = torch.get_rng_state()
        if average:
            _average_grads([list(m.student.parameters()) for m in models])
        for o in opts:
            o.optimizer.step()
            o.optimizer.zero_grad()
        with torch.no_grad():
            if average:
                named = [dict(m.named_buffers()) for m in models]
                for name, b0 in named[0].items():
                    if b0.is_floating_point() and not name.startswith('teacher.'):
                        mean = sum(n[name] for n in named) / 2
                        for n in named:
                            n[name].copy_(mean)
            for m in models:
                if m.teacher is not None:
                    m.teacher.update(m.student)
    return models


@pytest.mark.slow
@pytest.mark.parametrize('method', ['sac', 'unimatch'])
def test_two_process_step_matches_a_single_process_reference(tmp_path, method):
    """Overlapped bucketed all-reduce (several backward passes per SAC step, UniMatch's
    feature perturbation and CutMix partner): the weights after 3 steps on 2 gloo processes
    equal those of two copies stepped with the mean of their gradients."""
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    mp.spawn(_method_worker, args=(str(tmp_path / 'store'), str(tmp_path), method, True), nprocs=2)
    ranks = [torch.load(tmp_path / f'rank{r}.pt') for r in (0, 1)]
    ref = _method_reference(method)[0].state_dict()
    for k, v in ref.items():
        assert torch.equal(ranks[0][k], ranks[1][k]), f'{k} differs between the ranks'
        assert torch.allclose(ranks[0][k].float(), v.float(), atol=1e-5), k
    alone = _method_reference(method, average=False)[0].state_dict()
    k = 'student.classifier.weight'
    assert not torch.allclose(alone[k], ref[k], atol=1e-4), 'the comparison is not sensitive'


# ------------------------------------------------- world-size-invariant batch and lr
def _total_batch_cfg(tmp_path) -> dict:
    cfg = toy_runner_cfg(str(tmp_path / 'ddp'), max_iters=2, val_interval=2)
    cfg.pop('work_dir')
    cfg['val_evaluator'].pop('out_file')
    cfg['total_batch_size'] = 4  # images per branch over all processes; lr 0.01 is for 4
    return cfg


def test_total_batch_on_one_process(tmp_path):
    from mmengine.runner import Runner

    from uda.engine.dist import prepare_distributed

    cfg = Config(_total_batch_cfg(tmp_path))
    cfg.work_dir = str(tmp_path / 'one')
    prepare_distributed(cfg)
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.train_dataloader.batch_size == 4
    ckpt = torch.load(tmp_path / 'one' / 'iter_2.pth', weights_only=False)
    assert ckpt['optimizer']['param_groups'][0]['lr'] == pytest.approx(0.01)


@pytest.mark.slow
def test_total_batch_on_two_processes(tmp_path):
    """The same config on 2 processes: 2 images per branch each (4 in all), the reference lr."""
    states = _torchrun(tmp_path, Config(_total_batch_cfg(tmp_path)), 29567)
    assert [states[f'before{r}']['batch'] for r in (0, 1)] == [2, 2]
    assert states['before0']['world'] == 2
    ckpt = torch.load(tmp_path / 'ddp' / 'iter_2.pth', weights_only=False)
    assert ckpt['optimizer']['param_groups'][0]['lr'] == pytest.approx(0.01)
    _assert_ranks_equal(states)
