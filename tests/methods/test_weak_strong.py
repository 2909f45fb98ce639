"""Weak/strong consistency: masked loss over non-padding pixels, views, teacher start."""

import math

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import toy_batch
from uda.losses import masked_consistency_loss
from uda.registry import MODELS


def test_loss_golden_half_padding():
    # 1 image, 3 classes, 2 x 2 pixels; the bottom row is padding.
    logits = torch.zeros(1, 3, 2, 2)  # CE = ln 3 everywhere
    labels = torch.tensor([[[0, 255], [255, 255]]])  # one confident pixel
    weight = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    valid = torch.tensor([[[True, True], [False, False]]])
    loss = masked_consistency_loss(logits, labels, weight, valid)
    # Divided by the 2 image pixels, not by the 1 confident pixel nor the 4 padded ones.
    assert loss.item() == pytest.approx(math.log(3) / 2, rel=1e-6)


def _adapter(threshold=0.0, source='student', strong_branch=None, teacher=None):
    return MODELS.build(
        dict(
            type='Adapter',
            segmentor=dict(type='ToySegmentor'),
            data_preprocessor=dict(type='SegDataPreprocessor', size_divisor=1),
            teacher=teacher,
            labellers=dict(
                conf=dict(type='ConfidenceLabeller', threshold=threshold, source=source)
            ),
            terms=dict(ws=dict(type='WeakStrongConsistency', strong_branch=strong_branch)),
        )
    )


def _ctx(model, branches=('source', 'target')):
    batch = toy_batch(branches)
    for s in batch['target']['data_samples']:
        s['img_shape'] = (16, 32)  # the bottom half of each target image is padding
    if 'target.strong' in batch:
        batch['target.strong']['data_samples'] = batch['target']['data_samples']
    data = model.data_preprocessor(batch, True)
    return model.make_context(data['inputs'], data['data_samples'])


def test_term_masks_by_the_labeller_and_divides_by_image_pixels():
    torch.manual_seed(0)
    model = _adapter(threshold=0.0, strong_branch='target.strong')
    model.train()
    ctx = _ctx(model, ('source', 'target', 'target.strong'))
    out = model.terms['ws'](ctx)
    with torch.no_grad():
        labels = model.student_eval_logits(ctx.inputs('target')).argmax(1)
        ce = F.cross_entropy(model.student(ctx.inputs('target.strong')), labels, reduction='none')
    expected = ce[:, :16].sum() / (2 * 16 * 32)  # padding rows neither count nor divide
    assert out['loss'].item() == pytest.approx(expected.item(), rel=1e-5)
    assert out['mask_ratio'].item() == pytest.approx(1.0)
    assert out['loss'].requires_grad


def test_nothing_confident_gives_zero_loss_and_ratio():
    model = _adapter(threshold=1.0)
    out = model.terms['ws'](_ctx(model))
    assert out['loss'].item() == 0.0 and out['mask_ratio'].item() == 0.0


def test_on_device_strong_view_changes_image_pixels_only():
    torch.manual_seed(0)
    model = _adapter()
    ctx = _ctx(model)
    x = ctx.inputs('target')
    valid = torch.zeros(2, 32, 32, dtype=torch.bool)
    valid[:, :16] = True
    strong = model.terms['ws'].strong_view(ctx, x, valid)
    assert torch.equal(strong[:, :, 16:], x[:, :, 16:])
    assert not torch.allclose(strong[:, :, :16], x[:, :, :16])


def test_strong_branch_must_keep_the_geometry():
    model = _adapter(strong_branch='target.strong')
    batch = toy_batch(('source', 'target'))
    batch['target.strong'] = toy_batch(('target',), h=16)['target']
    data = model.data_preprocessor(batch, True)
    ctx = model.make_context(data['inputs'], data['data_samples'])
    with pytest.raises(ValueError, match='keep the geometry'):
        model.terms['ws'](ctx)


def test_teacher_labeller_starts_the_term_with_the_teacher():
    model = _adapter(source='teacher', teacher=dict(momentum=0.999, start_iter=5, ramp=True))
    assert model.terms['ws'].needs_teacher and model.phases['ws'] == (5, None)
    assert _adapter(source='student').phases['ws'] == (0, None)


def test_runner_trains_with_a_ramped_mean_teacher(tmp_path):
    from mmengine.runner import Runner

    from tests.conftest import toy_runner_cfg

    cfg = toy_runner_cfg(
        str(tmp_path),
        terms=dict(src=dict(type='SourceCE'), ws=dict(type='WeakStrongConsistency')),
        labellers=dict(conf=dict(type='ConfidenceLabeller', threshold=0.0)),
    )
    cfg['model']['teacher'] = dict(momentum=0.999, interval=1, start_iter=0, ramp=True)
    runner = Runner.from_cfg(cfg)
    runner.train()
    scalars = runner.message_hub.log_scalars
    assert scalars['train/ws.mask_ratio'].current() == pytest.approx(1.0)
    assert int(runner.model.teacher.updates) == 2
