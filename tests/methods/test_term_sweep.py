"""Every registered term builds and trains: a new term is tested as soon as it is registered."""
import math

import pytest
import torch
from mmengine.optim import OptimWrapper

from uda.engine import AdapterOptimWrapperConstructor

from tests.conftest import toy_batch
from uda.registry import MODELS, TERMS


def _adapter(term_cfgs):
    return MODELS.build(dict(type='Adapter', segmentor=dict(type='ToySegmentor'),
                             data_preprocessor=dict(type='SegDataPreprocessor', size_divisor=1),
                             terms=term_cfgs))


@pytest.mark.parametrize('name', TERMS.available())
def test_term_two_train_steps(name):
    torch.manual_seed(0)
    terms = [dict(type='SourceCE')] + ([] if name == 'SourceCE' else [dict(type=name)])
    model = _adapter(terms)
    model.train()
    if getattr(model, 'teacher', None) is not None:
        model.init_teacher()  # what EMATeacherHook does when self-training starts
    if any(t.owns_discriminator for t in model.terms):
        # Terms with a discriminator train it with its own optimiser (two-phase step).
        wrapper = AdapterOptimWrapperConstructor(dict(
            student=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01)),
            discriminators=dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-4))))(model)
    else:
        params = [p for n, p in model.named_parameters() if not n.startswith('teacher')]
        wrapper = OptimWrapper(torch.optim.SGD(params, lr=0.01))
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


def test_duplicate_loss_keys_are_rejected():
    model = _adapter([dict(type='SourceCE'), dict(type='SourceCE')])
    with pytest.raises(KeyError, match='same keys'):
        model.train_step(toy_batch(), OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1)))


def test_non_finite_loss_names_the_iteration():
    model = _adapter([dict(type='SourceCE', weight=float('nan'))])
    with pytest.raises(FloatingPointError, match='iteration'):
        model.train_step(toy_batch(), OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1)))


def test_predict_crops_padding_back():
    model = _adapter([dict(type='SourceCE')])
    model.data_preprocessor.size_divisor = 16
    batch = toy_batch(('val',), h=20, w=30, labelled=('val',))['val']
    data = model.data_preprocessor(batch, False)
    assert data['inputs'].shape[-2:] == (32, 32)
    assert data['data_samples'][0]['gt_sem_seg'][20:].eq(255).all()
    preds = model.predict(data['inputs'], data['data_samples'])
    assert preds[0]['pred_sem_seg'].shape == (20, 30)
    assert preds[0]['gt_sem_seg'].shape == (20, 30)
