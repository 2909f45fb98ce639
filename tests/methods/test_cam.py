"""SingleStageCAM, SingleStageCAMMask and ImageLabelFilter on tiny batches; the CAM configs."""

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
    model = _adapter(dict(cam=dict(type='SingleStageCAM')))
    ctx = _ctx(model, _weak_batch())
    out = model.terms['cam'](ctx)
    assert set(out) == {'loss', 'fg_share'}  # the classification term alone
    logits = ctx.student('source')['logits']
    x = torch.cat([torch.ones_like(logits[:, :1]), logits], 1)  # appended background, logit 1
    m = x.softmax(1)
    scores = ngwp_scores(x, m) + focal_mask_penalty(m, 3.0, 0.01)
    y = torch.zeros(2, 19)
    y[0, [1, 3]] = 1
    y[1, 2] = 1
    expected = F.multilabel_soft_margin_loss(scores[:, 1:], y)
    assert torch.allclose(out['loss'], expected, atol=1e-6)


def _two_terms(start_iter=0, **maps):
    """cam.py's two terms on the source branch, both given the same ``maps`` settings."""
    return dict(
        cam=dict(type='SingleStageCAM', **maps),
        cam_mask=dict(type='SingleStageCAMMask', start_iter=start_iter, pamr_iter=2, **maps),
    )


def test_mask_term_starts_at_its_start_iter_and_pseudo_labels_respect_image_labels():
    torch.manual_seed(0)
    model = _adapter(_two_terms(start_iter=5))
    assert model.phases == {'cam': (0, None), 'cam_mask': (5, None)}
    early = model.run_terms(_ctx(model, _weak_batch(), iteration=4))
    assert 'cam.loss' in early and not any(k.startswith('cam_mask.') for k in early)
    out = model.run_terms(_ctx(model, _weak_batch(), iteration=5))
    assert {'cam.loss', 'cam_mask.loss', 'cam_mask.mask_images', 'cam_mask.pseudo_ratio'} <= set(
        out
    )
    assert out['cam_mask.loss'].requires_grad and torch.isfinite(out['cam_mask.loss'])
    panels = model.terms['cam_mask'].vis_panels()
    labels = panels['cam_mask.pseudo_labels'].unique().tolist()
    assert set(labels) <= {1, 3, 255}  # image 0 is labelled {1, 3}; 255 = unclaimed / none
    assert panels['cam_mask.image'].dtype == torch.uint8 and panels['cam_mask.image'].shape[0] == 3


def test_mask_term_learns_the_refined_masks_of_the_maps_the_classification_term_pools():
    """Both terms build the same maps from the shared settings: the mask loss is the
    class-balanced CE of those logits on pseudo masks of their own softmax, PAMR-refined."""
    from uda.losses.cam import CAMLayout, balanced_mask_ce, pseudo_masks

    torch.manual_seed(0)
    model = _adapter(_two_terms(bg_logit=1.0, cam_stride=2))
    ctx = _ctx(model, _weak_batch())
    cls, mask = model.terms['cam'], model.terms['cam_mask']
    assert cls.layout == mask.layout == CAMLayout(None, 1.0, 2)
    out = mask(ctx)
    maps = mask.layout.maps(ctx.student('source')['logits'], ctx.valid_pixels('source'))
    y = torch.zeros(2, 19)
    y[0, [1, 3]] = 1
    y[1, 2] = 1
    image = ctx.denormalize(ctx.inputs('source')).float() / 255.0
    image = F.interpolate(image, maps.pooled.shape[-2:], mode='bilinear', align_corners=True)
    refined = mask.pamr(image, maps.masks.detach())
    refined = F.interpolate(refined, maps.logits.shape[-2:], mode='bilinear', align_corners=True)
    refined[:, 1:] *= y[..., None, None]
    pseudo = pseudo_masks(refined, 0.6, 0.7, 0.2) * maps.valid
    required = torch.cat([torch.zeros(2, 1), y], 1)  # the appended background is optional
    loss, _ = balanced_mask_ce(maps.logits, pseudo, required)
    torch.testing.assert_close(out['loss'], loss.mean(), atol=1e-6, rtol=1e-5)


def test_image_labels_derived_from_masks_when_the_branch_has_pixel_labels():
    model = _adapter(_two_terms())
    out = model.run_terms(_ctx(model, toy_batch(('source',))))
    assert torch.isfinite(out['cam.loss']) and torch.isfinite(out['cam_mask.loss'])


def test_bad_cam_stride_names_the_term():
    for term in ('SingleStageCAM', 'SingleStageCAMMask'):
        with pytest.raises(ValueError, match=rf'{term}\(cam_stride=0\): use an integer >= 1'):
            _adapter(dict(t=dict(type=term, cam_stride=0)))


def test_background_class_needs_the_constant_logit_of_the_segmentor():
    for term in ('SingleStageCAM', 'SingleStageCAMMask'):
        with pytest.raises(ValueError, match=rf'{term}\(background=0\).*constant_logit'):
            _adapter(dict(cam=dict(type=term, background=0)))
    seg = dict(
        type='SMPSegmentor',
        encoder_name='resnet18',
        num_classes=3,
        decoder_channels=(16, 16, 16, 16, 8),
        constant_logit=dict(index=0, value=1.0),
    )
    model = _adapter(_two_terms(background=0), segmentor=seg)
    batch = toy_batch(('source',), labelled=(), h=32, w=32)
    for s, ids in zip(batch['source']['data_samples'], ((0, 2), (0, 1))):
        s['img_labels'] = torch.tensor(ids)
    out = model.run_terms(_ctx(model, batch))
    assert torch.isfinite(out['cam.loss']) and torch.isfinite(out['cam_mask.loss'])


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
    model = _adapter(_two_terms(bg_logit=None))
    ctx = _ctx(model, _weak_batch())
    out = model.terms['cam'](ctx)
    logits = ctx.student('source')['logits']
    m = logits.softmax(1)
    scores = ngwp_scores(logits, m) + focal_mask_penalty(m, 3.0, 0.01)
    y = torch.zeros(2, 19)
    y[0, [1, 3]] = 1
    y[1, 2] = 1
    expected = F.multilabel_soft_margin_loss(scores, y)
    assert torch.allclose(out['loss'], expected, atol=1e-6)
    model.terms['cam_mask'](ctx)
    labels = model.terms['cam_mask'].vis_panels()['cam_mask.pseudo_labels'].unique().tolist()
    assert set(labels) <= {1, 3, 255}


def test_every_cam_config_gives_both_terms_the_same_maps():
    """A mask term reads the maps of a classification term on its branch: the configs give
    both the same background / bg_logit / cam_stride (one variable, cam_maps)."""
    from pathlib import Path

    from mmengine.config import Config

    root = Path(__file__).resolve().parents[2] / 'configs'
    keys = ('branch', 'background', 'bg_logit', 'cam_stride')
    checked = 0
    for path in sorted(p for p in root.rglob('*.py') if '_base_' not in p.parts):
        terms = (Config.fromfile(str(path)).model.get('terms') or {}).values()
        cls = [{k: t.get(k) for k in keys} for t in terms if t.get('type') == 'SingleStageCAM']
        for t in terms:
            if t.get('type') == 'SingleStageCAMMask':
                assert {k: t.get(k) for k in keys} in cls, path
                checked += 1
    assert checked >= 5


def test_mask_settings_given_to_the_classification_term_name_the_mask_term():
    """A config from before the split (issue 23) gets one error that says where the keys go."""
    from uda.methods.cam import SingleStageCAM

    with pytest.raises(
        TypeError,
        match=r'SingleStageCAM\(mask_start_iter, pamr_iter=\.\.\.\).*'
        r'SingleStageCAMMask',
    ):
        SingleStageCAM(mask_start_iter=100, pamr_iter=10)
