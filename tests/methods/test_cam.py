"""SingleStageCAM and ImageLabelFilter on tiny batches."""

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import toy_batch
from uda.losses.cam import focal_mask_penalty, ngwp_scores
from uda.methods.context import ViewPseudoLabels
from uda.registry import MODELS


def _adapter(terms, labellers=None, segmentor=None, num_classes=None):
    return MODELS.build(
        dict(
            type='Adapter',
            segmentor=segmentor or dict(type='ToySegmentor'),
            data_preprocessor=dict(type='SegDataPreprocessor', size_divisor=1),
            terms=terms,
            labellers=labellers,
            num_classes=num_classes,
        )
    )


def _ctx(model, batch, iteration=0):
    data = model.data_preprocessor(batch, True)
    return model.make_context(data['inputs'], data['data_samples'], iteration)


def _weak_batch(classes=((1, 3), (2,)), seed=0):
    """Source branch with image labels only (img_labels, no masks)."""
    batch = toy_batch(('source',), labelled=(), seed=seed)
    for s, ids in zip(batch['source']['data_samples'], classes):
        s['img_labels'] = torch.tensor(ids)
    return batch


def test_classification_loss_is_ngwp_plus_focal_with_a_constant_background():
    torch.manual_seed(0)
    model = _adapter(dict(cam=dict(type='SingleStageCAM', mask_start_iter=5)))
    ctx = _ctx(model, _weak_batch())
    out = model.terms['cam'](ctx)
    assert set(out) == {'loss_cls', 'fg_share'}  # classification-only phase
    logits = ctx.student('source')['logits']
    x = torch.cat([torch.ones_like(logits[:, :1]), logits], 1)  # appended background, logit 1
    m = x.softmax(1)
    scores = ngwp_scores(x, m) + focal_mask_penalty(m, 3.0, 0.01)
    y = torch.zeros(2, 19)
    y[0, [1, 3]] = 1
    y[1, 2] = 1
    expected = F.multilabel_soft_margin_loss(scores[:, 1:], y)
    assert torch.allclose(out['loss_cls'], expected, atol=1e-6)


def test_mask_loss_after_the_classification_phase_and_pseudo_labels_respect_image_labels():
    torch.manual_seed(0)
    model = _adapter(dict(cam=dict(type='SingleStageCAM', mask_start_iter=5, pamr_iter=2)))
    out = model.terms['cam'](_ctx(model, _weak_batch(), iteration=5))
    assert {'loss_mask', 'mask_images', 'pseudo_ratio'} <= set(out)
    assert out['loss_mask'].requires_grad and torch.isfinite(out['loss_mask'])
    panels = model.terms['cam'].vis_panels()
    labels = panels['cam.pseudo_labels'].unique().tolist()
    assert set(labels) <= {1, 3, 255}  # image 0 is labelled {1, 3}; 255 = unclaimed / none
    assert panels['cam.image'].dtype == torch.uint8 and panels['cam.image'].shape[0] == 3


def test_image_labels_derived_from_masks_when_the_branch_has_pixel_labels():
    model = _adapter(dict(cam=dict(type='SingleStageCAM', mask_start_iter=0, pamr_iter=1)))
    out = model.terms['cam'](_ctx(model, toy_batch(('source',))))
    assert torch.isfinite(out['loss_cls']) and torch.isfinite(out['loss_mask'])


def test_background_class_needs_the_constant_logit_of_the_segmentor():
    with pytest.raises(ValueError, match='constant_logit'):
        _adapter(dict(cam=dict(type='SingleStageCAM', background=0)))
    seg = dict(
        type='SMPSegmentor',
        encoder_name='resnet18',
        num_classes=3,
        decoder_channels=(16, 16, 16, 16, 8),
        constant_logit=dict(index=0, value=1.0),
    )
    model = _adapter(
        dict(cam=dict(type='SingleStageCAM', background=0, pamr_iter=1)), segmentor=seg
    )
    batch = toy_batch(('source',), labelled=(), h=32, w=32)
    for s, ids in zip(batch['source']['data_samples'], ((0, 2), (0, 1))):
        s['img_labels'] = torch.tensor(ids)
    out = model.terms['cam'](_ctx(model, batch))
    assert torch.isfinite(out['loss_mask'])


def test_image_label_filter_drops_classes_absent_from_the_image_labels():
    torch.manual_seed(0)
    model = _adapter(
        dict(src=dict(type='SourceCE')),
        labellers=dict(
            conf=dict(type='ConfidenceLabeller', threshold=0.0, source='student'),
            weak=dict(type='ImageLabelFilter', labeller='conf'),
        ),
    )
    batch = toy_batch(('source', 'target'))
    raw = _ctx(model, batch).pseudo_labels('target', 'conf').labels
    present = raw[0].unique()[:2].tolist()  # keep two of the predicted classes of image 0
    for s in batch['target']['data_samples']:
        s['img_labels'] = torch.tensor(present)
    ctx = _ctx(model, batch)
    pl = ctx.pseudo_labels('target', 'weak')
    inner = ctx.pseudo_labels('target', 'conf')
    kept = torch.isin(inner.labels, torch.tensor(present))
    assert torch.equal(pl.labels[kept], inner.labels[kept])
    assert bool((pl.labels[~kept] == 255).all()) and bool((pl.weight[~kept] == 0).all())
    assert torch.equal(pl.extras['suppressed'], ~kept & (inner.labels != 255))


def test_image_label_filter_on_sac_views():
    torch.manual_seed(0)
    model = _adapter(
        dict(src=dict(type='SourceCE')),
        labellers=dict(
            sac=dict(type='SACLabeller', num_images=1, num_views=3),
            weak=dict(type='ImageLabelFilter', labeller='sac'),
        ),
    )
    model.teacher.init_from(model.student)
    batch = toy_batch(('source', 'target'))
    for s in batch['target']['data_samples']:
        s['img_labels'] = torch.tensor([0])
    ctx = _ctx(model, batch)
    pl, inner = ctx.pseudo_labels('target', 'weak'), ctx.pseudo_labels('target', 'sac')
    assert pl.labels.shape[0] == 3 and set(pl.labels.unique().tolist()) <= {0, 255}
    # A derived labeller keeps the typed fields of the views it filters (SAC reads them).
    assert isinstance(pl, ViewPseudoLabels) and pl.views is inner.views
    assert pl.inputs is inner.inputs and pl.prior is inner.prior and pl.valid is inner.valid


def test_without_a_background_channel_softmax_runs_over_the_classes_only():
    torch.manual_seed(0)
    model = _adapter(dict(cam=dict(type='SingleStageCAM', bg_logit=None, pamr_iter=1)))
    ctx = _ctx(model, _weak_batch())
    out = model.terms['cam'](ctx)
    logits = ctx.student('source')['logits']
    m = logits.softmax(1)
    scores = ngwp_scores(logits, m) + focal_mask_penalty(m, 3.0, 0.01)
    y = torch.zeros(2, 19)
    y[0, [1, 3]] = 1
    y[1, 2] = 1
    expected = F.multilabel_soft_margin_loss(scores, y)
    assert torch.allclose(out['loss_cls'], expected, atol=1e-6)
    labels = model.terms['cam'].vis_panels()['cam.pseudo_labels'].unique().tolist()
    assert set(labels) <= {1, 3, 255}
