"""Gradient averaging, the adapter's grad_sync hook and AdapterDataParallel in one process
(the two-process runs are in test_ddp.py, marked slow)."""

import pytest
import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.model import BaseModel, is_model_wrapper
from mmengine.optim import OptimWrapper
from mmengine.registry import MODEL_WRAPPERS as ROOT_MODEL_WRAPPERS

from tests.conftest import toy_batch
from uda.engine import AdapterDataParallel, AdapterOptimWrapperConstructor, average_gradients
from uda.engine.dist import apply_total_batch, prepare_distributed
from uda.registry import MODELS


def _param(grad, dtype=torch.float32, requires_grad=True):
    p = torch.nn.Parameter(torch.zeros(len(grad), dtype=dtype), requires_grad=requires_grad)
    p.grad = None if grad is None or not requires_grad else torch.tensor(grad, dtype=dtype)
    return p


def test_average_gradients_golden_values():
    a, b = _param([2.0, 4.0]), _param([6.0], torch.float64)
    c = torch.nn.Parameter(torch.zeros(3))  # no gradient on this rank
    frozen = _param([1.0], requires_grad=False)
    calls = []

    def other_rank_holds_ones(t):  # an all-reduce (sum) with a second rank whose values are 1
        calls.append(t.numel())
        t.add_(1)

    # 4-byte buckets: one collective per tensor; `a` is listed twice but reduced once.
    average_gradients(
        [a, b, c, frozen, a],
        world_size=2,
        all_reduce=other_rank_holds_ones,
        bucket_cap_mb=4 / 2**20,
    )
    assert a.grad.tolist() == [1.5, 2.5]
    assert b.grad.dtype == torch.float64 and b.grad.tolist() == [3.5]
    assert c.grad.tolist() == [0.5, 0.5, 0.5]  # zeros here, ones on the other rank
    assert frozen.grad is None
    assert calls == [3, 2, 3, 1]  # has-gradient mask, then a, c (float32), b (float64)

    calls.clear()  # default buckets: float32 gradients share one collective
    a.grad, c.grad = torch.tensor([2.0, 4.0]), torch.tensor([0.0, 0.0, 2.0])
    average_gradients([a, b, c], world_size=2, all_reduce=other_rank_holds_ones)
    assert calls == [3, 5, 1]
    assert c.grad.tolist() == [0.5, 0.5, 1.5]


def test_gradient_missing_on_every_rank_stays_none():
    a, c = _param([2.0, 4.0]), torch.nn.Parameter(torch.zeros(2))

    def other_rank_holds_zeros(t):  # the other rank has no gradient for either parameter
        pass

    average_gradients([a, c], world_size=3, all_reduce=other_rank_holds_zeros)
    assert torch.allclose(a.grad, torch.tensor([2 / 3, 4 / 3]))
    assert c.grad is None  # the optimiser skips it, as in a single process


def test_average_gradients_single_rank_does_not_communicate():
    a = _param([2.0, 4.0])
    average_gradients([a], world_size=1, all_reduce=lambda t: pytest.fail('communicated'))
    assert a.grad.tolist() == [2.0, 4.0]


def _adapter():
    return MODELS.build(
        dict(
            type='Adapter',
            segmentor=dict(type='ToySegmentor'),
            data_preprocessor=dict(type='SegDataPreprocessor', size_divisor=1),
            terms=dict(
                src=dict(type='SourceCE'),
                ent=dict(type='EntropyAdversarial'),
                minent=dict(type='MinEnt', aux_weight=0),
            ),
            bn_policy='target_only',
        )
    )


def _wrappers(model, **kw):
    return AdapterOptimWrapperConstructor(
        dict(
            student=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1), **kw),
            discriminators=dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-3), **kw),
        )
    )(model)


def test_grad_sync_runs_between_backward_and_step_only_when_stepping():
    torch.manual_seed(0)
    model, ref = _adapter(), _adapter()
    ref.load_state_dict(model.state_dict())
    ow, ref_ow = _wrappers(model, accumulative_counts=2), _wrappers(ref, accumulative_counts=2)
    ow.initialize_count_status(model, 0, 4)
    ref_ow.initialize_count_status(ref, 0, 4)
    calls = []

    def grad_sync(optim_wrapper):
        params = [p for g in optim_wrapper.optimizer.param_groups for p in g['params']]
        calls.append((optim_wrapper, all(p.grad is not None for p in params)))

    for step in range(4):
        model.train_step(toy_batch(seed=step), ow, grad_sync=grad_sync)
        ref.train_step(toy_batch(seed=step), ref_ow)
        # Accumulation over 2 steps: synchronised (after the backward pass) when stepping.
        expected = [] if step % 2 == 0 else [(ow['student'], True), (ow['discriminators'], True)]
        assert calls == expected, step
        calls.clear()
    # With a synchronisation that changes nothing the step equals update_params.
    for (name, p), q in zip(model.named_parameters(), ref.parameters()):
        assert torch.equal(p, q), name


def test_steps_use_the_synchronised_gradients():
    torch.manual_seed(0)
    model = _adapter()
    ow = _wrappers(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}

    def zero_gradients(optim_wrapper):  # e.g. the other ranks' gradients cancel ours
        for g in optim_wrapper.optimizer.param_groups:
            for p in g['params']:
                if p.grad is not None:
                    p.grad.zero_()

    model.train_step(toy_batch(), ow, grad_sync=zero_gradients)
    # SGD without weight decay and Adam's first step move nothing with zero gradients.
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


@pytest.fixture
def one_rank_group(tmp_path):
    dist.init_process_group(
        'gloo', init_method=f'file://{tmp_path / "store"}', rank=0, world_size=1
    )
    yield
    dist.destroy_process_group()


def test_wrapper_needs_a_process_group():
    with pytest.raises(RuntimeError, match='torchrun'):
        AdapterDataParallel(_adapter())


def test_wrapper_trains_validates_and_is_found_by_the_runner(one_rank_group):
    torch.manual_seed(0)
    model = _adapter()
    wrapped = AdapterDataParallel(model)
    assert is_model_wrapper(wrapped) and wrapped.module is model
    # mmengine's Runner resolves model_wrapper_cfg types in its root registry.
    assert ROOT_MODEL_WRAPPERS.get('uda.AdapterDataParallel') is AdapterDataParallel
    ow = _wrappers(model)
    disc = {n: p.detach().clone() for n, p in model.terms['ent'].discriminator.named_parameters()}
    log = wrapped.train_step(toy_batch(), ow)
    assert {'src.loss_ce', 'ent.loss_adv', 'ent.disc.loss'} <= set(log)
    assert any(
        not torch.equal(p, disc[n]) for n, p in model.terms['ent'].discriminator.named_parameters()
    )
    wrapped.eval()
    preds = wrapped.val_step(toy_batch(branches=('target',), labelled=('target',))['target'])
    assert len(preds) == 2 and preds[0]['pred_sem_seg'].shape == (32, 32)
    # A single-optimiser adapter (ABN) takes the same path.
    abn = MODELS.build(
        dict(
            type='Adapter',
            segmentor=dict(type='ToySegmentor'),
            data_preprocessor=dict(type='SegDataPreprocessor', size_divisor=1),
            terms=dict(src=dict(type='SourceCE')),
            bn_policy='target_only',
        )
    )
    AdapterDataParallel(abn).train_step(
        toy_batch(), OptimWrapper(torch.optim.SGD(abn.parameters(), lr=0.1))
    )


class _PlainModel(BaseModel):
    def forward(self, inputs, data_samples=None, mode='tensor'):
        return inputs


def test_wrapper_rejects_models_without_grad_sync(one_rank_group):
    with pytest.raises(TypeError, match='MMDistributedDataParallel'):
        AdapterDataParallel(_PlainModel())


def test_prepare_distributed_picks_the_adapter_wrapper(one_rank_group):
    cfg = Config(dict(launcher='pytorch', model=dict(type='Adapter')))
    prepare_distributed(cfg)
    assert cfg.model_wrapper_cfg == dict(type='uda.AdapterDataParallel')
    cfg = Config(
        dict(
            launcher='pytorch',
            model=dict(type='Adapter'),
            model_wrapper_cfg=dict(type='MMDistributedDataParallel'),
        )
    )
    prepare_distributed(cfg)
    expected = dict(type='MMDistributedDataParallel')
    if not torch.cuda.is_available():
        expected['device_ids'] = None  # a CPU module
    assert cfg.model_wrapper_cfg == expected
    cfg = Config(dict(launcher='none', model=dict(type='Adapter')))
    prepare_distributed(cfg)
    assert 'model_wrapper_cfg' not in cfg


def test_sync_bn_needs_cuda_and_a_known_implementation():
    cfg = Config(dict(launcher='pytorch', model=dict(type='Adapter'), sync_bn='mmcv'))
    with pytest.raises(ValueError, match="sync_bn='torch'"):
        prepare_distributed(cfg)
    if not torch.cuda.is_available():
        cfg.sync_bn = 'torch'
        with pytest.raises(RuntimeError, match='needs GPUs'):
            prepare_distributed(cfg)


def test_sync_bn_conversion_keeps_the_bn_policy_on_the_new_layers():
    """The Runner converts BatchNorm to SyncBatchNorm after the adapter is built (mmengine's
    convert_sync_batchnorm, what ``sync_bn='torch'`` runs); the 'target_only' policy must act
    on the converted layers: source forwards leave the running statistics alone."""
    from mmengine.model import convert_sync_batchnorm

    torch.manual_seed(0)
    model = _adapter()
    model = convert_sync_batchnorm(model, 'torch')
    bn = model.student.bn
    assert isinstance(bn, torch.nn.SyncBatchNorm)
    assert list(model.bn_policy.momentum(model.student)) == [bn]
    data = model.data_preprocessor(toy_batch(), True)
    ctx = model.make_context(data['inputs'], data['data_samples'])
    mean0 = bn.running_mean.clone()
    with model.bn_policy.applied(model.student, 0):
        ctx.student('source')  # no process group: SyncBatchNorm runs as BatchNorm
        assert torch.equal(bn.running_mean, mean0), 'a source forward moved the statistics'
        with torch.no_grad():
            ctx.student('target')
    assert not torch.equal(bn.running_mean, mean0), 'the target forward must update them'
    assert bn.momentum == 0.1


def _launches_in_backward(monkeypatch):
    """Record, per bucket launch, whether it ran inside the autograd engine's backward."""
    from uda.engine import dist as dist_mod

    where = []
    launch = dist_mod._Bucket.launch

    def record(self, all_reduce, scale):
        where.append(torch._C._current_graph_task_id() != -1)
        return launch(self, all_reduce, scale)

    monkeypatch.setattr(dist_mod._Bucket, 'launch', record)
    return where


@pytest.mark.parametrize('overlap', [True, False])
def test_overlapped_all_reduce_launches_from_gradient_hooks(one_rank_group, monkeypatch, overlap):
    torch.manual_seed(0)
    model, ref = _adapter(), _adapter()
    ref.load_state_dict(model.state_dict())
    where = _launches_in_backward(monkeypatch)
    # Tiny buckets: one per parameter; the first ones launch while backward still runs.
    wrapped = AdapterDataParallel(model, overlap=overlap, bucket_cap_mb=1e-6)
    ow, ref_ow = _wrappers(model, accumulative_counts=2), _wrappers(ref, accumulative_counts=2)
    ow.initialize_count_status(model, 0, 4)
    ref_ow.initialize_count_status(ref, 0, 4)
    n_student = sum(1 for p in model.student.parameters())
    n_disc = sum(1 for p in model.terms['ent'].discriminator.parameters())
    for step in range(2):
        wrapped.train_step(toy_batch(seed=step), ow)
        ref.train_step(toy_batch(seed=step), ref_ow)
        if step == 0:  # accumulating: nothing is communicated
            assert where == []
    if overlap:
        # Student phase, then discriminator phase: all but the last bucket of each can only
        # have launched from a gradient hook, inside backward.
        assert len(where) == n_student + n_disc and sum(where) >= n_student + n_disc - 2
    else:
        assert where == []  # average_gradients after the backward pass
    # One rank: the averaged gradients are the gradients; the steps equal unwrapped ones.
    for (name, p), q in zip(model.named_parameters(), ref.parameters()):
        assert torch.allclose(p, q, atol=1e-6), name


def test_bucket_buffers_are_allocated_once_and_hold_the_scaled_gradients(one_rank_group):
    # A fresh flat buffer per step costs page faults (10 % of a CPU step, benchmarks/ddp_step.py):
    # the buffers are kept, and what is reduced is the gradient / world size.
    from uda.engine import dist as dist_mod

    torch.manual_seed(0)
    model = _adapter()
    wrapped = AdapterDataParallel(model, bucket_cap_mb=1e-6)
    ow = _wrappers(model)
    wrapped.train_step(toy_batch(seed=0), ow)
    phase = next(iter(wrapped._phases.values()))
    flats = [b.flat for b in phase.buckets]
    wrapped.train_step(toy_batch(seed=1), ow)
    assert all(b.flat is flat for b, flat in zip(phase.buckets, flats))
    p = phase.params[0]
    p.grad = torch.randn_like(p)
    bucket = dist_mod._Bucket([p])
    bucket.launch(lambda t, async_op: None, 0.25)
    assert torch.equal(bucket.views[0], p.grad * 0.25) and bucket.views[0].shape == p.shape


def test_buffers_sync_at_the_interval_and_before_validation_and_checkpoints(one_rank_group):
    from types import SimpleNamespace

    from uda.engine.hooks import SyncBuffersHook

    torch.manual_seed(0)
    model = _adapter()
    wrapped = AdapterDataParallel(model, buffer_sync_interval=3)
    calls = []
    sync = wrapped.sync_buffers
    wrapped.sync_buffers = lambda floats_only=False: (
        calls.append(floats_only),
        sync(floats_only),
    )[1]
    ow = _wrappers(model)
    for step in range(4):
        wrapped.train_step(toy_batch(seed=step), ow)
        assert calls == ([True] if step >= 2 else []), step  # floats only at the interval
    assert wrapped.buffers_stale  # counters not synced; step 4 changed the statistics
    from mmengine.hooks import CheckpointHook

    ckpt = CheckpointHook(interval=5, by_epoch=False)
    runner = SimpleNamespace(model=wrapped, hooks=[ckpt], iter=2, max_iters=10)
    hook = SyncBuffersHook()
    hook.after_train_iter(runner, 0)  # iteration 3: no checkpoint, no sync
    assert calls == [True]
    runner.iter = 4  # iteration 5 saves a checkpoint (on rank 0 only): every rank syncs first
    hook.after_train_iter(runner, 0)
    assert calls == [True, False] and not wrapped.buffers_stale  # the full sync
    hook.before_val(runner)  # nothing changed since: no collective
    assert len(calls) == 2
    wrapped.train_step(toy_batch(seed=5), ow)
    hook.before_val(runner)
    assert len(calls) == 3 and calls[-1] is False
    with pytest.raises(ValueError, match='buffer_sync_interval'):
        AdapterDataParallel(model, buffer_sync_interval=0)


def test_prepare_distributed_adds_the_buffer_sync_hook(one_rank_group):
    cfg = Config(dict(launcher='pytorch', model=dict(type='Adapter')))
    prepare_distributed(cfg)
    assert cfg.custom_hooks == [dict(type='SyncBuffersHook')]
    prepare_distributed(cfg)  # not twice
    assert cfg.custom_hooks == [dict(type='SyncBuffersHook')]


@pytest.mark.parametrize(
    'world, per_process, factor',
    [(1, 8, 1.0), (2, 4, 1.0), (8, 1, 1.0), (3, 3, 9 / 8), (16, 1, 2.0)],
)
def test_total_batch_gives_the_per_process_batch_and_the_linear_lr(world, per_process, factor):
    cfg = Config(dict(total_batch_size=8, train_dataloader=dict(batch_size=2)))
    applied = apply_total_batch(cfg, world)
    assert cfg.train_dataloader.batch_size == per_process
    assert cfg.auto_scale_lr == dict(enable=True, base_batch_size=8)
    # mmengine's Runner.scale_lr: lr x world * batch_size / base_batch_size
    assert world * per_process / 8 == pytest.approx(factor) == applied['lr_factor']
    assert applied['effective_batch'] == world * per_process


def test_total_batch_rejects_bad_values_and_a_conflicting_auto_scale_lr():
    with pytest.raises(ValueError, match='total_batch_size'):
        apply_total_batch(Config(dict(total_batch_size=0, train_dataloader={})), 1)
    cfg = Config(
        dict(
            total_batch_size=8,
            train_dataloader={},
            auto_scale_lr=dict(enable=True, base_batch_size=16),
        )
    )
    with pytest.raises(ValueError, match='drop auto_scale_lr'):
        apply_total_batch(cfg, 2)
    assert apply_total_batch(Config(dict(train_dataloader={})), 2) is None


def test_total_batch_reads_the_launchers_world_size(monkeypatch):
    monkeypatch.setenv('WORLD_SIZE', '2')
    cfg = Config(dict(launcher='pytorch', total_batch_size=4, train_dataloader=dict(batch_size=1)))
    monkeypatch.setattr(dist, 'is_initialized', lambda: True)  # no process group needed
    prepare_distributed(cfg)
    assert cfg.train_dataloader.batch_size == 2
    monkeypatch.delenv('WORLD_SIZE')
    with pytest.raises(RuntimeError, match='WORLD_SIZE'):
        prepare_distributed(
            Config(dict(launcher='pytorch', total_batch_size=4, train_dataloader={}))
        )
