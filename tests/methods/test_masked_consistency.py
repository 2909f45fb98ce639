"""MIC masked consistency: the block-masked view, labels of the unmasked target, one teacher
forward shared with ClassMix."""

import math

import torch
from mmengine.optim import OptimWrapper

import uda.methods.masked_consistency as mic_module
from tests.conftest import toy_batch
from uda.registry import MODELS


def _adapter(terms):
    model = MODELS.build(
        dict(
            type='Adapter',
            segmentor=dict(type='ToySegmentor'),
            data_preprocessor=dict(type='SegDataPreprocessor', size_divisor=1),
            terms=dict(src=dict(type='SourceCE'), **terms),
            labellers=dict(teacher_quality=dict(type='QualityLabeller')),
        )
    )
    model.train()
    model.teacher.init_from(model.student)  # what EMATeacherHook does at start_iter
    return model


def _context(model, seed=0):
    data = model.data_preprocessor(toy_batch(seed=seed), True)
    return model.make_context(data['inputs'], data['data_samples'])


def test_masked_view_is_the_target_times_the_block_mask():
    model = _adapter(dict(mic=dict(type='MaskedConsistency', block_size=16, photometric=None)))
    ctx = _context(model)
    x = ctx.inputs('target')
    torch.manual_seed(0)
    view, keep = model.terms['mic'].masked_view(ctx)
    # 32 x 32 with 16 px blocks: a 2 x 2 grid of constant cells, masked pixels exactly 0.
    cells = keep.view(2, 2, 16, 2, 16)
    assert torch.equal(cells, cells[:, :, :1, :, :1].expand_as(cells))
    assert set(keep.unique().tolist()) <= {0.0, 1.0} and 0 < keep.sum() < keep.numel()
    torch.testing.assert_close(view, x * keep[:, None])


def test_mask_ratio_sets_the_visible_share():
    model = _adapter(dict(mic=dict(type='MaskedConsistency', block_size=1, photometric=None)))
    ctx = _context(model)
    torch.manual_seed(0)
    _, keep = model.terms['mic'].masked_view(ctx)
    # 2 x 32 x 32 independent cells, each visible with probability 1 - 0.7.
    assert math.isclose(keep.mean().item(), 0.3, abs_tol=0.03)


def test_labels_are_the_teachers_on_the_unmasked_target(monkeypatch):
    model = _adapter(dict(mic=dict(type='MaskedConsistency', block_size=16)))
    term = model.terms['mic']
    ctx = _context(model)
    seen = {}

    def spy(logits, target, pixel_weight=None, **kwargs):
        seen.update(target=target, weight=pixel_weight)
        return logits.float().mean()

    inputs = []
    model.student.register_forward_pre_hook(lambda m, args: inputs.append(args[0]))
    monkeypatch.setattr(mic_module, 'cross_entropy', spy)
    torch.manual_seed(3)
    expected_view, keep = term.masked_view(ctx)
    torch.manual_seed(3)
    out = term(ctx)
    assert torch.isfinite(out['loss_ce']) and out['visible'] == keep.mean()
    # The student saw the masked, augmented view ...
    assert len(inputs) == 1 and torch.equal(inputs[0], expected_view)
    # ... and was trained towards the labeller's labels and weights of the UNMASKED target.
    fresh = _context(model)
    unmasked = model.labellers['teacher_quality'](fresh, 'target')
    assert torch.equal(seen['target'], unmasked.labels)
    assert torch.equal(seen['weight'], unmasked.weight)
    on_view = model.teacher(expected_view).argmax(1)
    assert not torch.equal(on_view, unmasked.labels)  # labelling the view would differ


def test_class_mix_and_mic_run_the_teacher_once_per_step():
    model = _adapter(
        dict(mix=dict(type='ClassMix'), mic=dict(type='MaskedConsistency', block_size=16))
    )
    calls = []
    model.teacher.net.register_forward_hook(lambda *args: calls.append(1))
    params = [p for n, p in model.named_parameters() if not n.startswith('teacher')]
    wrapper = OptimWrapper(torch.optim.SGD(params, lr=0.01))
    for step in range(2):
        log_vars = model.train_step(toy_batch(seed=step), wrapper)
        assert len(calls) == step + 1
        for key in ('src.loss_ce', 'mix.loss_ce', 'mic.loss_ce', 'mix.quality', 'mic.visible'):
            assert math.isfinite(float(log_vars[key])), key
    assert all(p.grad is None for p in model.teacher.parameters())
