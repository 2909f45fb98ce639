"""Adversarial terms and MinEnt: two-phase optimisation, isolation of the two updates,
AMP-style autocast, gradient accumulation, checkpoint/resume of both optimisers."""

import contextlib
import os

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.runner import Runner

import uda.engine  # noqa: F401  (checkpoint loader)
from tests.conftest import toy_adversarial_runner_cfg, toy_batch
from uda.engine import AdapterOptimWrapperConstructor
from uda.registry import MODELS

ADV_TERMS = [
    dict(type='OutputAdversarial'),
    dict(type='EntropyAdversarial'),
    dict(type='FeatureAdversarial', mode='grl'),
    dict(type='FeatureAdversarial', mode='gan', feature='decoder', aux_weight=0),
    dict(type='OutputAdversarial', gan_loss='lsgan', aux_weight=0),
]


def _adapter(terms):
    return MODELS.build(
        dict(
            type='Adapter',
            segmentor=dict(type='ToySegmentor'),
            data_preprocessor=dict(type='SegDataPreprocessor', size_divisor=1),
            terms={'src': dict(type='SourceCE'), **{f't{i}': t for i, t in enumerate(terms)}},
        )
    )


def _wrappers(model, wrapper_type='OptimWrapper', **kw):
    return AdapterOptimWrapperConstructor(
        dict(
            student=dict(type=wrapper_type, optimizer=dict(type='SGD', lr=0.1), **kw),
            discriminators=dict(
                type=wrapper_type, optimizer=dict(type='Adam', lr=1e-3, betas=(0.9, 0.99)), **kw
            ),
        )
    )(model)


def _snapshot(module):
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def _changed(module, before):
    return [n for n, p in module.named_parameters() if not torch.equal(p, before[n])]


@pytest.mark.parametrize(
    'term', ADV_TERMS, ids=lambda t: f'{t["type"]}-{t.get("mode", "")}{t.get("gan_loss", "")}'
)
def test_each_update_leaves_the_other_network_alone(term):
    torch.manual_seed(0)
    model = _adapter([term])
    model.train()
    ow = _wrappers(model)
    disc = model.terms['t0'].discriminator
    d0, s0 = _snapshot(disc), _snapshot(model.student)
    # Segmentor phase only: run it through the wrapper with the discriminator step removed.
    data = model.data_preprocessor(toy_batch(), True)
    with model._frozen([disc]):
        ctx = model.make_context(data['inputs'], data['data_samples'])
        losses = model.run_terms(ctx)
    loss, _ = model.parse_losses(losses)
    ow['student'].update_params(loss)
    assert _changed(model.student, s0), 'the segmentor step did not train the student'
    assert not _changed(disc, d0), 'the segmentor step changed the discriminator'
    assert all(p.grad is None or not p.grad.any() for p in disc.parameters())
    # Discriminator phase: the student stays as it is.
    s1 = _snapshot(model.student)
    d_loss, log = model.parse_losses(model.terms['t0'].phase_loss('discriminators', ctx))
    ow['discriminators'].update_params(d_loss)
    assert _changed(disc, d0), 'the discriminator step did not train the discriminator'
    assert not _changed(model.student, s1), 'the discriminator step changed the student'
    assert all(p.grad is None or not p.grad.any() for p in model.student.parameters())


def test_full_train_step_logs_discriminator_accuracy_and_losses():
    torch.manual_seed(0)
    model = _adapter([dict(type='EntropyAdversarial'), dict(type='MinEnt')])
    model.train()
    ow = _wrappers(model)
    d0 = _snapshot(model.terms['t0'].discriminator)
    log = model.train_step(toy_batch(), ow)
    for key in (
        't0.loss_adv',
        't0.loss_adv_aux',
        't0.loss',  # the term's total on the console line
        't1.loss_ent',
        't0.disc.loss',
        't0.disc.acc_src',
        't0.disc.acc_tgt',
        't0.disc.acc_src_aux',
    ):
        assert key in log, key
    assert 0 <= float(log['t0.disc.acc_src']) <= 1
    total = log['t0.loss_adv'] + log['t0.loss_adv_aux']
    assert torch.allclose(log['t0.loss'], total) and 't0.disc.loss' not in model.console_keys()
    assert _changed(model.terms['t0'].discriminator, d0)
    panels = {k: v for t in model.terms.values() for k, v in t.vis_panels().items()}
    assert set(panels) == {'target_entropy_t0', 'target_entropy_t1'}  # by term name
    assert panels['target_entropy_t0'].dtype == torch.uint8
    assert panels['target_entropy_t0'].shape == (3, 32, 32)


def test_grl_mode_reverses_the_feature_gradient():
    # With the same discriminator and inputs, the GRL fool loss sends the encoder the
    # opposite of the gradient of the discriminator's own loss (scaled by weight / 2 terms).
    torch.manual_seed(0)
    model = _adapter([dict(type='FeatureAdversarial', mode='grl', aux_weight=0, weight=1.0)])
    term = model.terms['t0']
    data = model.data_preprocessor(toy_batch(), True)
    src = model.student(data['inputs']['source'], return_features=True)['features'][-1]
    tgt = model.student(data['inputs']['target'], return_features=True)['features'][-1]
    src = src.detach().requires_grad_(True)
    tgt = tgt.detach().requires_grad_(True)
    g_fool = torch.autograd.grad(term._fool_loss(term.discriminator['main'], src, tgt), (src, tgt))
    term._cache = {'main': (src, tgt)}
    d_loss = term.phase_loss('discriminators', None)['disc.loss']
    g_disc = torch.autograd.grad(d_loss, (src, tgt))
    for a, b in zip(g_fool, g_disc):
        assert torch.allclose(a, -b, atol=1e-7)


def test_single_optimiser_with_a_discriminator_is_rejected():
    model = _adapter([dict(type='OutputAdversarial')])
    with pytest.raises(TypeError, match='AdapterOptimWrapperConstructor'):
        model.train_step(toy_batch(), OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1)))


def test_constructor_partitions_parameters():
    model = _adapter([dict(type='OutputAdversarial'), dict(type='FeatureAdversarial')])
    ow = _wrappers(model)
    student = {id(p) for g in ow['student'].optimizer.param_groups for p in g['params']}
    discs = {id(p) for g in ow['discriminators'].optimizer.param_groups for p in g['params']}
    assert student == {id(p) for p in model.student.parameters()}
    assert discs == {
        id(p) for n, t in model.terms.items() if n != 'src' for p in t.discriminator.parameters()
    }
    assert ow['discriminators'].optimizer.defaults['betas'] == (0.9, 0.99)
    with pytest.raises(KeyError, match='discriminators'):
        AdapterOptimWrapperConstructor(
            dict(student=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1)))
        )(model)
    with pytest.raises(ValueError, match='no term declares'):
        _wrappers(_adapter([dict(type='MinEnt')]))


class _CPUAutocastOptimWrapper(OptimWrapper):
    """AmpOptimWrapper's context (autocast to bf16) on CPU; mmengine's needs CUDA."""

    @contextlib.contextmanager
    def optim_context(self, model):
        with super().optim_context(model), torch.autocast('cpu', dtype=torch.bfloat16):
            yield


def test_train_step_under_bf16_autocast():
    torch.manual_seed(0)
    small = dict(type='FCDiscriminator', channels=(8, 8, 8, 8))
    model = _adapter(
        [
            dict(type='EntropyAdversarial', discriminator=small),
            dict(type='FeatureAdversarial'),
            dict(type='MinEnt'),
        ]
    )
    model.train()
    ow = AdapterOptimWrapperConstructor(
        dict(
            student=dict(type=_CPUAutocastOptimWrapper, optimizer=dict(type='SGD', lr=0.1)),
            discriminators=dict(
                type=_CPUAutocastOptimWrapper, optimizer=dict(type='Adam', lr=1e-4)
            ),
        )
    )(model)
    for step in range(2):
        log = model.train_step(toy_batch(seed=step), ow)
        assert all(torch.isfinite(torch.as_tensor(v)).all() for v in log.values())


@pytest.mark.gpu
def test_train_step_with_amp_optim_wrapper_on_cuda():
    if not torch.cuda.is_available():
        pytest.skip('AmpOptimWrapper needs a CUDA device (mmengine asserts it).')
    model = _adapter([dict(type='OutputAdversarial'), dict(type='FeatureAdversarial')]).cuda()
    model.train()
    ow = _wrappers(model, 'AmpOptimWrapper', dtype='bfloat16')
    batch = toy_batch()
    for _ in range(2):
        log = model.train_step(batch, ow)
        assert all(torch.isfinite(torch.as_tensor(v)).all() for v in log.values())


def test_gradient_accumulation_steps_both_optimisers_every_second_iteration():
    torch.manual_seed(0)
    model = _adapter([dict(type='OutputAdversarial', aux_weight=0)])
    model.train()
    ow = _wrappers(model, accumulative_counts=2)
    ow.initialize_count_status(model, 0, 4)
    disc = model.terms['t0'].discriminator
    s0, d0 = _snapshot(model.student), _snapshot(disc)
    model.train_step(toy_batch(seed=0), ow)
    assert not _changed(model.student, s0) and not _changed(disc, d0)
    model.train_step(toy_batch(seed=1), ow)
    assert _changed(model.student, s0) and _changed(disc, d0)


def _adv_runner_cfg(work_dir, max_iters):
    return toy_adversarial_runner_cfg(work_dir, max_iters)


def test_checkpoint_resume_round_trip_of_both_optimisers(tmp_path):
    runner = Runner.from_cfg(Config(_adv_runner_cfg(str(tmp_path), 2)))
    runner.train()
    ckpt = tmp_path / 'iter_2.pth'
    state = torch.load(ckpt, weights_only=False)
    assert set(state['optimizer']) == {'student', 'discriminators'}
    assert any(k.startswith('terms.out.discriminator.main.') for k in state['state_dict'])
    saved_adam = state['optimizer']['discriminators']['state']
    assert saved_adam and all(s['step'] == 2 for s in saved_adam.values())

    cfg = _adv_runner_cfg(str(tmp_path), 4)
    cfg.update(resume=True, load_from=str(ckpt))
    resumed = Runner.from_cfg(Config(cfg))
    resumed.load_or_resume()
    opt = resumed.optim_wrapper
    for name in ('student', 'discriminators'):
        now, before = opt[name].optimizer.state_dict(), state['optimizer'][name]
        assert now['param_groups'][0]['lr'] == pytest.approx(before['param_groups'][0]['lr'])
        for k, s in before['state'].items():
            for field, value in s.items():
                assert torch.equal(
                    torch.as_tensor(now['state'][k][field]), torch.as_tensor(value)
                ), (name, k, field)
    model_sd = resumed.model.state_dict()
    for k, v in state['state_dict'].items():
        assert torch.equal(model_sd[k], v), k
    resumed.train()
    assert resumed.iter == 4
    assert all(
        s['step'] == 4
        for s in resumed.optim_wrapper['discriminators'].optimizer.state_dict()['state'].values()
    )
    pngs = [f for _, _, fs in os.walk(tmp_path) for f in fs if f.endswith('.png')]
    assert any(p.startswith('train_target_entropy_out') for p in pngs), pngs


ROOT = os.path.join(os.path.dirname(__file__), '..', '..')
MULTI_OPTIM_LEAVES = sorted(
    os.path.join(d, f)
    for sub in ('advent', 'adaptsegnet', 'feature_adversarial')
    for d in [os.path.join(ROOT, 'configs', sub)]
    for f in os.listdir(d)
)


@pytest.mark.parametrize('path', MULTI_OPTIM_LEAVES, ids=os.path.basename)
def test_leaf_config_builds_its_optimisers(path):
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope

    cfg = Config.fromfile(path)
    model_cfg = cfg.model.to_dict()
    model_cfg['segmentor'] = dict(type='ToySegmentor')
    with DefaultScope.overwrite_default_scope('uda'):
        model = MODELS.build(model_cfg)
        ow = build_optim_wrapper(model, cfg.optim_wrapper)
    if any(t.optimised_modules() for t in model.terms.values()):
        assert set(ow.keys()) == {'student', 'discriminators'}
        # One schedule per optimiser, or one list that drives both.
        assert isinstance(cfg.param_scheduler, list) or set(cfg.param_scheduler) == {
            'student',
            'discriminators',
        }
        assert ow['discriminators'].optimizer.defaults['lr'] == 1e-4
    else:
        assert isinstance(ow, OptimWrapper) and not hasattr(ow, 'optim_wrappers')
