"""ClassMix (DACS): batch-pool / per-image masks, label / weight composition, quality weight."""

import math

import torch
import torch.nn.functional as F

from tests.conftest import toy_batch
from uda.methods import Labeller, PseudoLabels
from uda.registry import MODELS

IGNORE = 255


class FixedLabeller(Labeller):
    """Hand-made pseudo-labels: image i is all class ``labels[i]`` with weight ``weights[i]``."""

    def __init__(self, labels, weights):
        super().__init__('student')
        self.fixed_labels, self.fixed_weights = labels, weights

    def forward(self, ctx, branch):
        x = ctx.inputs(branch)
        B, _, H, W = x.shape
        labels = torch.tensor(self.fixed_labels)[:, None, None].expand(B, H, W).clone()
        weight = torch.tensor(self.fixed_weights)[:, None, None].expand(B, H, W).clone()
        return PseudoLabels(labels, weight)


def _adapter(labeller=None, teacher=None, **mix):
    model = MODELS.build(
        dict(
            type='Adapter',
            segmentor=dict(type='ToySegmentor'),
            data_preprocessor=dict(type='SegDataPreprocessor', size_divisor=1),
            terms=dict(src=dict(type='SourceCE'), mix=dict(type='ClassMix', **mix)),
            labellers=dict(teacher_quality=labeller or dict(type='QualityLabeller')),
            teacher=teacher,
        )
    )
    model.train()
    return model


def _source_labels():
    """Image 0: classes 1 | 2 (left / right halves); image 1: stripes of 3, 4, 5; the top 4
    rows are ignore pixels."""
    gt = torch.zeros(2, 32, 32, dtype=torch.long)
    gt[0, :, :16], gt[0, :, 16:] = 1, 2
    gt[1, :, :10], gt[1, :, 10:20], gt[1, :, 20:] = 3, 4, 5
    gt[:, :4] = IGNORE
    return gt


def _context(model, seed=0):
    batch = toy_batch(seed=seed)
    for s, gt in zip(batch['source']['data_samples'], _source_labels()):
        s['gt_sem_seg'] = gt
    data = model.data_preprocessor(batch, True)
    return model.make_context(data['inputs'], data['data_samples'])


def _hand_made(model):
    # Pseudo-labels: 7 with quality 0.25 on image 0, 8 with quality 0.5 on image 1.
    model.labellers['teacher_quality'] = FixedLabeller([7, 8], [0.25, 0.5])
    return model


def test_mixed_labels_and_weights_compose_source_and_pseudo_labels_per_image():
    model = _hand_made(_adapter(photometric=None, class_pool='image'))
    term = model.terms['mix']
    ctx = _context(model)
    src, tgt, gt = ctx.inputs('source'), ctx.inputs('target'), ctx.labels('source')
    own = [{1, 2}, {3, 4, 5}]
    for seed in range(8):
        torch.manual_seed(seed)
        batch = term.mixed_batch(ctx)
        for i, (pseudo, q) in enumerate([(7, 0.25), (8, 0.5)]):
            m = batch.mask[i]
            chosen = set(gt[i][m].tolist())
            # ceil(n / 2) of the image's OWN classes, all their pixels, never ignore pixels.
            assert chosen <= own[i] and len(chosen) == math.ceil(len(own[i]) / 2)
            assert torch.equal(m, torch.isin(gt[i], torch.tensor(sorted(chosen))))
            assert not m[:4].any()
            # Pasted pixels: source label, weight 1; the rest: pseudo-label, weight q.
            assert torch.equal(batch.labels[i][m], gt[i][m])
            assert (batch.labels[i][~m] == pseudo).all()
            assert (batch.weight[i][m] == 1).all() and (batch.weight[i][~m] == q).all()
            # photometric=None: the mixed image is exactly source | target.
            assert torch.equal(batch.image[i][:, m], src[i][:, m])
            assert torch.equal(batch.image[i][:, ~m], tgt[i][:, ~m])


def test_quality_weight_reaches_the_loss():
    model = _hand_made(_adapter(photometric=None, weight=2.0))
    term = model.terms['mix']
    ctx = _context(model)
    torch.manual_seed(0)
    out = term(ctx)
    torch.manual_seed(0)
    batch = term.mixed_batch(ctx)
    with torch.no_grad():
        logits = model.student(batch.image)
    ce = F.cross_entropy(logits, batch.labels, ignore_index=IGNORE, reduction='none')
    w = torch.ones_like(ce)
    w[0][~batch.mask[0]], w[1][~batch.mask[1]] = 0.25, 0.5
    torch.testing.assert_close(out['loss_ce'].detach(), 2.0 * (ce * w).mean())
    # Without the quality weight (q = 1) the loss differs: q is really applied.
    assert not torch.isclose(out['loss_ce'].detach(), 2.0 * ce.mean())
    # One loss; the quality is a diagnostic, not summed into the objective.
    assert [k for k in out if 'loss' in k] == ['loss_ce']
    torch.testing.assert_close(out['quality'], torch.tensor((0.25 + 0.5) / 2))


def test_quality_labeller_weights_target_pixels():
    """With DACS's QualityLabeller, non-pasted pixels carry q = share of confident teacher
    pixels (threshold 0 -> q = 1, threshold 1.01 -> q = 0)."""
    for threshold, q in ((0.0, 1.0), (1.01, 0.0)):
        model = _adapter(
            labeller=dict(type='QualityLabeller', threshold=threshold), photometric=None
        )
        model.teacher.init_from(model.student)
        ctx = _context(model)
        batch = model.terms['mix'].mixed_batch(ctx)
        assert (batch.weight[~batch.mask] == q).all() and (batch.weight[batch.mask] == 1).all()
        teacher = ctx.pseudo_labels('target', 'teacher_quality').labels
        assert torch.equal(batch.labels[~batch.mask], teacher[~batch.mask])


def test_strong_augmentation_changes_pixels_not_labels():
    model = _hand_made(_adapter())
    term = model.terms['mix']
    ctx = _context(model)
    torch.manual_seed(1)
    strong = term.mixed_batch(ctx)
    term.photometric = None
    torch.manual_seed(1)
    plain = term.mixed_batch(ctx)
    assert torch.equal(strong.mask, plain.mask) and torch.equal(strong.labels, plain.labels)
    assert not torch.allclose(strong.image, plain.image)
    term(ctx)
    panels = term.vis_panels()
    assert panels['classmix_image'].dtype == torch.uint8
    assert panels['classmix_image'].shape == (3, 32, 32)
    assert panels['classmix_label'].shape == panels['classmix_mask'].shape[1:] == (32, 32)


def test_term_starts_with_the_teacher_only_through_its_labeller():
    with_teacher = _adapter(teacher=dict(momentum=0.999, start_iter=5, ramp=True))
    assert with_teacher.phases['mix'] == (5, None)
    student = _adapter(labeller=dict(type='QualityLabeller', source='student'))
    assert student.teacher is None and student.phases['mix'] == (0, None)


def test_batch_pool_is_the_default_and_draws_from_the_batch_classes():
    """The reference ClassMix (class_pool='batch'): image 0 (classes 1, 2) can receive pixels
    of no class at all or only its ignore pixels, which the per-image pool never does."""
    model = _hand_made(_adapter(photometric=None))
    term = model.terms['mix']
    assert term.class_pool == 'batch'
    ctx = _context(model)
    gt = ctx.labels('source')
    pool = {1, 2, 3, 4, 5, IGNORE}
    only_foreign = 0
    for seed in range(40):
        torch.manual_seed(seed)
        batch = term.mixed_batch(ctx)
        for i in range(2):
            chosen = set(gt[i][batch.mask[i]].tolist())
            assert chosen <= pool
            assert batch.mask[i].equal(torch.isin(gt[i], torch.tensor(sorted(chosen) or [-1])))
            assert torch.equal(batch.labels[i][batch.mask[i]], gt[i][batch.mask[i]])
        only_foreign += int(not batch.mask[0][4:].any())
    assert only_foreign > 0  # 3 of 6 classes drawn, none of them 1 or 2: P = 1/5


def _quality_probs(B=2, C=3, H=32, W=32):
    """Image 0: every pixel confident (0.98); image 1: confident on its top quarter only."""
    probs = torch.full((B, C, H, W), 0.01)
    probs[:, 0] = 0.98
    probs[1, :, 8:] = torch.tensor([0.5, 0.3, 0.2])[:, None, None]
    return probs


def test_quality_labeller_batch_and_image_weights():
    """DACS code (lhoyer/MIC dacs.py:264-272): one weight, confident pixels of the batch over
    all its pixels: (1024 + 256) / 2048 = 0.625; quality='image': 1.0 and 0.25."""
    for quality, expected in (('batch', (0.625, 0.625)), ('image', (1.0, 0.25))):
        model = _adapter(
            labeller=dict(type='QualityLabeller', quality=quality, ignore_top=2), photometric=None
        )
        labeller = model.labellers['teacher_quality']
        labeller.predict_branch = lambda ctx, branch: _quality_probs()
        pl = labeller(_context(model), 'target')
        for i, q in enumerate(expected):
            # The margin rows get 0 but still count in the quality, as the reference.
            assert (pl.weight[i, 2:] == q).all() and (pl.weight[i, :2] == 0).all()
        assert (pl.labels == 0).all()


def test_dacs_and_mic_leaves_use_the_reference_forms():
    from mmengine.config import Config

    for leaf in (
        'configs/dacs/dacs_unet-resnet18_400_synthetic-96x192.py',
        'configs/mic/mic_segformer-mit-b5_40k_gta2cityscapes-512x512.py',
        'configs/dacs/dacs_deeplabv2-resnet101_40k_gta2cityscapes-512x512.py',
    ):
        model = Config.fromfile(leaf).model
        assert model.teacher.bn_mode == 'batch' and model.teacher.ramp_offset == 1, leaf
        assert model.labellers.teacher_quality.quality == 'batch', leaf
        assert model.terms.mix.class_pool == 'batch', leaf
