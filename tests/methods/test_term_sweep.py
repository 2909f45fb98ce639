"""Every registered term and labeller builds and trains: a new one is tested as soon as it is
registered."""

import inspect
import math

import pytest
import torch
from mmengine.optim import OptimWrapper

from tests.conftest import toy_batch
from uda.engine import AdapterOptimWrapperConstructor
from uda.registry import LABELLERS, MODELS, TERMS

# Arguments a term needs to run on the sweep's {source, target} batch.
TERM_ARGS = {'UniMatch': dict(weak_branch='target', mix_branch='target')}


def default_labellers(cls) -> dict:
    """The labellers a term or derived labeller class is made for, under the default names of
    its labeller arguments (``labeller_args``), and those they wrap in turn."""
    params = inspect.signature(cls.__init__).parameters
    named = [a for a in params if a.endswith('labeller')]
    assert set(named) <= set(cls.labeller_args), (
        f'{cls.__name__} names labellers in {named}: declare them in labeller_args'
    )
    out: dict = {}
    for arg, cfg in cls.labeller_args.items():
        out[params[arg].default] = dict(cfg)
        out.update(default_labellers(LABELLERS.get(cfg['type'])))
    return out


def _adapter(term_cfgs, labellers=None):
    return MODELS.build(
        dict(
            type='Adapter',
            segmentor=dict(type='ToySegmentor'),
            data_preprocessor=dict(type='SegDataPreprocessor', size_divisor=1),
            terms=term_cfgs,
            labellers=labellers,
        )
    )


SWEPT_TERMS = [n for n in TERMS.available() if not n.startswith('_')]


def term_model_and_wrapper(name, wrapper=None):
    """SourceCE + the term ``name`` (with its labeller) on the ToySegmentor, teacher
    initialised, and its optimiser wrapper(s): one per declared optimiser name when the term
    owns modules. ``wrapper`` (e.g. ``dict(type='CPUAmpOptimWrapper', dtype='bfloat16')``)
    replaces the plain ``OptimWrapper`` config of every wrapper."""
    terms = dict(src=dict(type='SourceCE'))
    if name != 'SourceCE':
        terms['t'] = dict(type=name, **TERM_ARGS.get(name, {}))
    labellers = default_labellers(TERMS.get(name))
    model = _adapter(terms, labellers)
    model.train()
    if model.teacher is not None:
        model.teacher.init_from(model.student)  # what EMATeacherHook does at start_iter
    declared = model.declared_optimisers()
    base = dict(wrapper or dict(type='OptimWrapper'))
    # Terms with their own modules get one optimiser per declared name.
    return model, AdapterOptimWrapperConstructor(
        {
            n: dict(
                base,
                optimizer=dict(
                    type='SGD' if n == 'student' else 'Adam',
                    lr=0.01 if n == 'student' else 1e-4,
                ),
            )
            for n in declared
        }
    )(model)


@pytest.mark.parametrize('name', SWEPT_TERMS)
def test_term_two_train_steps(name):
    torch.manual_seed(0)
    model, wrapper = term_model_and_wrapper(name)
    before = [p.detach().clone() for p in model.student.parameters()]
    for step in range(2):
        log_vars = model.train_step(toy_batch(seed=step), wrapper)
        assert log_vars, name
        for key, value in log_vars.items():
            assert math.isfinite(float(value)), (name, key, value)
        assert 'loss' in log_vars
    changed = any(not torch.equal(a, b) for a, b in zip(before, model.student.parameters()))
    assert changed, f'{name}: the student did not train'
    teacher = getattr(model, 'teacher', None)
    if teacher is not None:
        assert all(p.grad is None for p in teacher.parameters()), 'teacher got a gradient'


@pytest.mark.parametrize('name', [n for n in LABELLERS.available() if not n.startswith('_')])
def test_labeller_gives_labels_and_weights_of_the_branch(name):
    torch.manual_seed(0)
    # A derived labeller gets the labellers it wraps; its branch may need image labels
    # (derived from the pixel labels of a labelled toy branch).
    labellers = {'lab': dict(type=name), **default_labellers(LABELLERS.get(name))}
    labelled = ('source', 'target') if LABELLERS.get(name).labeller_args else ('source',)
    model = _adapter(dict(src=dict(type='SourceCE')), labellers)
    model.teacher.init_from(model.student)
    data = model.data_preprocessor(toy_batch(labelled=labelled), True)
    ctx = model.make_context(data['inputs'], data['data_samples'])
    pl = ctx.pseudo_labels('target', 'lab')
    assert pl.labels.dtype == torch.long and pl.labels.shape == pl.weight.shape
    assert pl.labels.shape[-2:] == (32, 32) and torch.isfinite(pl.weight).all()
    assert ctx.pseudo_labels('target', 'lab') is pl  # once per step


def test_log_keys_are_prefixed_by_the_term_name_and_each_term_has_a_total():
    model = _adapter(dict(a=dict(type='SourceCE'), b=dict(type='SourceCE', weight=2.0)))
    log = model.train_step(toy_batch(), OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1)))
    assert list(log) == ['loss', 'a.loss', 'a.loss_ce', 'b.loss', 'b.loss_ce']
    assert torch.allclose(log['b.loss'], 2 * log['a.loss'])
    assert model.console_keys() == ['loss', 'a.loss', 'b.loss']


def test_non_finite_loss_names_the_iteration():
    model = _adapter(dict(src=dict(type='SourceCE', weight=float('nan'))))
    with pytest.raises(FloatingPointError, match='iteration'):
        model.train_step(toy_batch(), OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1)))


def test_predict_crops_padding_back():
    model = _adapter(dict(src=dict(type='SourceCE')))
    model.data_preprocessor.size_divisor = 16
    batch = toy_batch(('val',), h=20, w=30, labelled=('val',))['val']
    data = model.data_preprocessor(batch, False)
    assert data['inputs'].shape[-2:] == (32, 32)
    assert data['data_samples'][0]['gt_sem_seg'][20:].eq(255).all()
    preds = model.predict(data['inputs'], data['data_samples'])
    assert preds[0]['pred_sem_seg'].shape == (20, 30)
    assert preds[0]['gt_sem_seg'].shape == (20, 30)
