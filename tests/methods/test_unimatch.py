"""UniMatch (and its FixMatch / mean-teacher presets): loss composition, threshold masking and
the padding denominator, CutMix targets, feature dropout, one weak forward per step."""

import math
import os

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

import uda.methods.source_only as source_only
import uda.methods.unimatch as unimatch
from tests.conftest import toy_batch
from uda.augment.mixing import cutmix_boxes
from uda.losses import masked_consistency_loss
from uda.methods.context import PseudoLabels
from uda.methods.unimatch import cutmix_targets, feature_dropout
from uda.registry import MODELS

ROOT = os.path.join(os.path.dirname(__file__), '..', '..')
BRANCHES = ('labeled', 'unlabeled', 'unlabeled_mix')


def _method(name: str, **term) -> dict:
    """The model config of ``configs/_base_/methods/<name>.py`` on the toy segmentor."""
    cfg = Config.fromfile(os.path.join(ROOT, 'configs', '_base_', 'methods', f'{name}.py'))
    model = cfg.model.to_dict()
    model.update(
        segmentor=dict(type='ToySegmentor'),
        data_preprocessor=dict(type='SegDataPreprocessor', size_divisor=1),
    )
    if term:
        model['terms']['unl'].update(term)
    return model


def _ctx(model, seed=0):
    batch = toy_batch(BRANCHES, labelled=('labeled',), seed=seed)
    data = model.data_preprocessor(batch, True)
    return model.make_context(data['inputs'], data['data_samples'], iteration=0)


def test_loss_composition_on_hand_made_losses(monkeypatch):
    # (L_x + 0.25 L_s1 + 0.25 L_s2 + 0.5 L_fp) / 2 with L_x = 4, L_s1 = 1, L_s2 = 2, L_fp = 3
    # (LiheYoung/UniMatch unimatch.py): the summed terms must give (4 + 0.25 + 0.5 + 1.5) / 2.
    values = iter([1.0, 2.0, 3.0])  # called for s1, s2, fp in this order
    monkeypatch.setattr(
        unimatch, 'masked_consistency_loss', lambda *a, **k: torch.tensor(next(values))
    )
    monkeypatch.setattr(source_only, 'cross_entropy', lambda *a, **k: torch.tensor(4.0))
    model = MODELS.build(_method('unimatch'))
    losses = model.loss(*_inputs(model))
    summed = sum(v for k, v in losses.items() if 'loss' in k)
    assert summed.item() == pytest.approx((4 + 0.25 * 1 + 0.25 * 2 + 0.5 * 3) / 2)
    assert set(losses) == {
        'sup.loss_ce',
        'unl.loss_s1',
        'unl.loss_s2',
        'unl.loss_fp',
        'unl.mask_ratio',
    }


def _inputs(model, seed=0):
    data = model.data_preprocessor(toy_batch(BRANCHES, labelled=('labeled',), seed=seed), True)
    return data['inputs'], data['data_samples']


@pytest.mark.parametrize('name', ['fixmatch', 'mean_teacher', 'unimatch'])
def test_identity_views_reduce_to_labelled_plus_weak_loss(name):
    # With no photometric change, no CutMix box and dropout p = 0, every strong / FP view is the
    # weak view: the objective is (L_x + L_w) / 2 for all three presets (their unlabelled
    # weights sum to 1 before the /2).
    torch.manual_seed(0)
    model = MODELS.build(
        _method(
            name,
            photometric=dict(preset='unimatch_strong', jitter_p=0.0, grey_p=0.0, blur_p=0.0),
            cutmix_p=0.0,
            fp_p=0.0,
        )
    )
    for lab in model.labellers.values():
        lab.threshold = 0.0
    model.train()
    if model.teacher is not None:
        model.teacher.init_from(model.student)
    inputs, samples = _inputs(model)
    losses = model.loss(inputs, samples)
    summed = sum(v for k, v in losses.items() if 'loss' in k)
    gt = torch.stack([s['gt_sem_seg'] for s in samples['labeled']])
    l_x = F.cross_entropy(model.student(inputs['labeled']), gt, ignore_index=255)
    if model.teacher is not None:
        target = model.teacher(inputs['unlabeled']).argmax(1)
    else:
        target = model.student(inputs['unlabeled']).argmax(1)
    l_w = F.cross_entropy(model.student(inputs['unlabeled']), target)
    assert summed.item() == pytest.approx((l_x + l_w).item() / 2, rel=1e-4)


def test_threshold_masking_and_padding_denominator():
    # One image, 2 classes, 2 x 2 pixels: confidences 0.97 / 0.90 on the top row; the bottom
    # row is crop padding (UniMatch ignore_mask 255).
    model = MODELS.build(_method('unimatch'))
    batch = toy_batch(('unlabeled',), batch=1, h=2, w=2, labelled=())
    batch['unlabeled']['data_samples'][0]['valid_mask'] = torch.tensor([[1, 1], [0, 0]]).bool()
    data = model.data_preprocessor(batch, True)
    ctx = model.make_context(data['inputs'], data['data_samples'], iteration=0)
    p = torch.tensor([[0.97, 0.10], [0.99, 0.99]])  # probability of class 0
    probs = torch.stack([p, 1 - p])[None]
    labeller = model.labellers['weak']
    labeller.predict_branch = lambda ctx, branch: probs  # hand-made predictions
    pl = labeller(ctx, 'unlabeled')
    assert pl.labels.tolist() == [[[0, 255], [255, 255]]]  # 0.90 < 0.95, padding ignored
    assert pl.valid.tolist() == [[[True, True], [False, False]]]
    logits = torch.tensor([[[2.0, 0.0], [5.0, 5.0]], [[0.0, 1.0], [0.0, 0.0]]])[None]
    loss = masked_consistency_loss(logits, pl.labels, pl.weight, pl.valid)
    ce00 = -math.log(math.exp(2) / (math.exp(2) + 1))
    # Summed over the confident pixel, divided by the 2 non-padding pixels (not by 1 or 4).
    assert loss.item() == pytest.approx(ce00 / 2, rel=1e-6)


def test_cutmix_targets_take_the_partner_inside_the_box():
    box = torch.tensor([[[True, False], [False, False]]])
    own = PseudoLabels(torch.tensor([[[1, 255], [3, 4]]]), torch.tensor([[[1.0, 0.0], [1, 1]]]))
    partner = PseudoLabels(torch.tensor([[[7, 8], [9, 9]]]), torch.tensor([[[0.0, 1.0], [1, 1]]]))
    own_valid = torch.tensor([[[True, True], [True, False]]])
    partner_valid = torch.tensor([[[False, True], [True, True]]])
    labels, weight, valid = cutmix_targets(box, own, own_valid, partner, partner_valid)
    assert labels.tolist() == [[[7, 255], [3, 4]]]
    assert weight.tolist() == [[[0.0, 0.0], [1.0, 1.0]]]
    assert valid.tolist() == [[[False, True], [True, False]]]  # the partner's padding in the box


def test_cutmix_box_aspect_ratio_range():
    # UniMatch obtain_cutmix_box: aspect U(0.3, 1/0.3), area U(0.02, 0.4) of the image.
    masks = cutmix_boxes(3000, 200, 200, p=1.0, generator=torch.Generator().manual_seed(0))
    rows = masks.any(2).sum(1).float()
    cols = masks.any(1).sum(1).float()
    ratio = rows / cols
    assert ratio.min() > 0.28 and ratio.max() < 1 / 0.28
    assert (ratio < 0.5).float().mean() > 0.05 and (ratio > 2.0).float().mean() > 0.2
    area = rows * cols / 200**2
    assert area.min() > 0.015 and area.max() <= 0.4


def test_feature_dropout_keeps_a_vits_class_tokens():
    # A DPT with readout='cat' needs the prefix tokens back (the 512x512 memory matrix's
    # UniMatch + ViT cells failed without them).
    from uda.models.segmentor import EncoderFeatures

    torch.manual_seed(0)
    feats = EncoderFeatures([torch.ones(2, 4, 3, 3), torch.ones(2, 8, 2, 2)])
    feats.prefix_tokens = [None, torch.randn(2, 1, 8)]
    dropped = feature_dropout(feats, p=0.5)
    assert isinstance(dropped, EncoderFeatures) and dropped.prefix_tokens is feats.prefix_tokens
    assert torch.equal(dropped[0], feats[0]) and not torch.equal(dropped[1], feats[1])
    assert type(feature_dropout(list(feats), p=0.5)) is list


def test_joint_perturbed_decode_on_a_vit_dpt():
    # The clean + dropped decode of a ViT whose DPT reads the class token: a training step runs
    # and the perturbed logits differ from the clean ones.
    model_cfg = _method('unimatch')
    model_cfg['segmentor'] = dict(
        type='SMPSegmentor',
        arch='DPT',
        encoder_name='tu-vit_tiny_patch16_224',
        encoder_kwargs=dict(img_size=32),
        decoder_intermediate_channels=(8, 8, 8, 8),
        decoder_fusion_channels=8,
        num_classes=3,
    )
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    batch = toy_batch(BRANCHES, labelled=('labeled',), h=32, w=32, seed=0)
    data = model.data_preprocessor(batch, True)
    ctx = model.make_context(data['inputs'], data['data_samples'], iteration=0)
    clean = ctx.student('unlabeled')['logits']
    dropped = ctx.student_perturbed('unlabeled')
    assert dropped is not None and dropped.shape == clean.shape
    assert not torch.allclose(dropped, clean)


def test_feature_dropout_changes_only_the_perturbed_branch():
    torch.manual_seed(0)
    feats = [torch.randn(2, 3, 4, 4), torch.randn(2, 8, 2, 2) + 3.0]
    before = [f.clone() for f in feats]
    dropped = feature_dropout(feats, p=0.5)
    assert all(a.equal(b) for a, b in zip(feats, before))  # not in place
    assert dropped[0] is feats[0]  # stage 0 (the input image) is never dropped
    per_channel = dropped[1].flatten(2)
    zero = (per_channel == 0).all(2)
    assert zero.any() and not zero.all()  # whole channels dropped, per image
    kept = ~zero
    assert torch.allclose(per_channel[kept], 2 * feats[1].flatten(2)[kept])  # scaled 1/(1-p)

    # In the term: the weak view's clean outputs stay those of its own forward.
    model = MODELS.build(_method('unimatch', strong_weights=(), fp_weight=0.5))
    model.train()
    ctx = _ctx(model)
    out = model.terms['unl'](ctx)
    weak = ctx.student('unlabeled')
    clean = model.student.decode(weak['features'])
    assert torch.allclose(weak['logits'], clean)
    assert out['loss_fp'].requires_grad


def test_weak_forward_runs_once_and_labels_come_from_it():
    model = MODELS.build(_method('unimatch'))
    model.train()
    ctx = _ctx(model)
    model.terms['unl'](ctx)
    # labelled + weak in one forward whose decoder also decodes the dropped features (shared by
    # the labeller, SourceCE and the FP branch) + the two strong views in one forward.
    assert ctx.counts['student'] == 2 and ctx.counts['student_decode'] == 0
    model = MODELS.build(_method('unimatch', fp_decode='separate', joint_branch=None))
    ctx = _ctx(model)
    model.terms['unl'](ctx)
    assert ctx.counts['student'] == 2 and ctx.counts['student_decode'] == 1
    model = MODELS.build(_method('unimatch'))
    ctx = _ctx(model)
    model.terms['unl'](ctx)
    assert ctx.counts['teacher'] == 0
    pl = ctx.pseudo_labels('unlabeled', 'weak')
    weak = ctx.student('unlabeled')['logits'].detach()
    conf, arg = weak.softmax(1).max(1)
    assert pl.labels.equal(torch.where(conf >= 0.95, arg, torch.full_like(arg, 255)))


def test_student_train_source_is_only_for_batch_branches():
    model = MODELS.build(_method('unimatch'))
    ctx = _ctx(model)
    with pytest.raises(ValueError, match="source='student'"):
        model.labellers['weak'].predict(ctx, ctx.inputs('unlabeled'))
    with pytest.raises(ValueError, match='student_train'):
        MODELS.build(
            dict(
                _method('unimatch'),
                labellers=dict(weak=dict(type='ConfidenceLabeller', source='students')),
            )
        )


def test_mean_teacher_ema_ramp_and_start():
    model = MODELS.build(_method('mean_teacher'))
    teacher = model.teacher
    assert teacher is not None and model.terms['unl'].needs_teacher
    # UniMatch-V2 unimatch_v2.py: ema_ratio = min(1 - 1 / (iters + 1), 0.996).
    for t, m in ((0, 0.0), (1, 0.5), (9, 0.9), (10_000, 0.996)):
        teacher.updates.fill_(t)
        assert teacher.momentum_now() == pytest.approx(m)
    assert model.phases['unl'] == (0, None)


def test_unimatch_rejects_a_term_without_losses_and_mismatched_partner():
    with pytest.raises(ValueError, match='strong view'):
        MODELS.build(_method('unimatch', strong_weights=(), fp_weight=0.0))
    model = MODELS.build(_method('unimatch'))
    batch = toy_batch(BRANCHES, labelled=('labeled',))
    batch['unlabeled_mix'] = toy_batch(('x',), h=16, w=16)['x']
    data = model.data_preprocessor(batch, True)
    ctx = model.make_context(data['inputs'], data['data_samples'], iteration=0)
    with pytest.raises(ValueError, match='same crop size'):
        model.terms['unl'](ctx)
