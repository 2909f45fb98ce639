"""UniMatch's BatchNorm batches: labelled + weak forwarded as one batch, clean + dropped
features decoded as one batch (LiheYoung/UniMatch unimatch.py:151,
model/semseg/deeplabv3plus.py:44-50), against hand-made forwards of the same network."""

import torch
import torch.nn as nn
import torch.nn.functional as F

from tests.conftest import toy_batch
from uda.methods.unimatch import feature_dropout
from uda.registry import MODELS


class DecoderBN(nn.Module):
    """Encoder conv -> BN, decoder BN -> 1x1 conv: BatchNorm on both sides of the features, so
    the batch the encoder and the decoder see is observable."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.conv, self.bn = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.dec_bn, self.classifier = nn.BatchNorm2d(4), nn.Conv2d(4, num_classes, 1)

    def extract_feat(self, x):
        return [x, torch.relu(self.bn(self.conv(x)))]

    def decode(self, features, size=None):
        return self.classifier(self.dec_bn(features[-1]))

    def forward(self, x, return_features=False, return_aux=False, return_cls=False):
        feats = self.extract_feat(x)
        logits = self.decode(feats)
        return dict(logits=logits, features=feats) if return_features else logits


def _adapter(**unl):
    model = MODELS.build(
        dict(
            type='Adapter',
            segmentor=dict(type='ToySegmentor', num_classes=3),
            data_preprocessor=dict(type='SegDataPreprocessor', size_divisor=1),
            labellers=dict(
                weak=dict(type='ConfidenceLabeller', threshold=0.0, source='student_train')
            ),
            terms=dict(
                sup=dict(type='SourceCE', weight=0.5, branch='labeled'),
                unl=dict(
                    type='UniMatch',
                    strong_weights=(),
                    fp_weight=0.5,
                    labeller='weak',
                    mix_branch=None,
                    **unl,
                ),
            ),
        )
    )
    torch.manual_seed(0)
    model.student = DecoderBN()
    model.train()
    return model


def _ctx(model):
    batch = toy_batch(('labeled', 'unlabeled'), labelled=('labeled',), seed=3)
    for s in batch['labeled']['data_samples']:
        s['gt_sem_seg'] = s['gt_sem_seg'] % 3
    data = model.data_preprocessor(batch, True)
    return model.make_context(data['inputs'], data['data_samples'])


def test_joint_forward_and_joint_fp_decode_match_the_reference_batches():
    model = _adapter(joint_branch='labeled', fp_decode='joint')
    ctx = _ctx(model)
    xl, xu = ctx.inputs('labeled'), ctx.inputs('unlabeled')
    seg = model.student
    torch.manual_seed(0)
    out = model.terms['unl'](ctx)
    sup = model.terms['sup'](ctx)
    # Hand-made reference: encoder on cat(x, u); decoder on cat(clean, dropped) of that batch.
    torch.manual_seed(0)
    feats = seg.extract_feat(torch.cat((xl, xu)))
    dropped = feature_dropout(feats, 0.5)
    both = seg.decode([torch.cat((f, d)) for f, d in zip(feats, dropped)], xl.shape[-2:])
    pred, fp = both[:4].detach(), both[4:].detach()
    gt = ctx.labels('labeled')
    ref_sup = 0.5 * F.cross_entropy(pred[:2], gt, ignore_index=255)
    torch.testing.assert_close(sup['loss_ce'].detach(), ref_sup)
    pl = pred[2:].argmax(1)
    ref_fp = F.cross_entropy(fp[2:], pl, reduction='none').mean()
    torch.testing.assert_close(out['loss_fp'].detach(), 0.5 * 0.5 * ref_fp)
    assert ctx.counts['student'] == 1  # one encoder pass for both branches


def test_separate_forwards_and_decodes_give_other_batch_statistics():
    joint = _adapter(joint_branch='labeled')
    a = _ctx(joint)
    torch.manual_seed(0)
    fp_joint = joint.terms['unl'](a)['loss_fp']
    la = joint.terms['sup'](a)['loss_ce']
    # Train-mode BatchNorm over 2 vs 4 images: the labelled loss changes.
    separate = _adapter(fp_decode='separate')
    b = _ctx(separate)
    lb = separate.terms['sup'](b)['loss_ce']
    assert not torch.isclose(la, lb)
    assert b.student_perturbed('unlabeled') is None
    # Joint labelled + weak forward, dropped features decoded on their own: another FP loss.
    fp_only = _adapter(joint_branch='labeled', fp_decode='separate')
    c = _ctx(fp_only)
    torch.manual_seed(0)
    fp_sep = fp_only.terms['unl'](c)['loss_fp']
    assert not torch.isclose(fp_joint, fp_sep)
    # In the joint decode the decoder's BatchNorm also sees the dropped features.
    assert not torch.allclose(c.student('labeled')['logits'], a.student('labeled')['logits'])


def test_fp_gradient_reaches_the_encoder_when_the_labeller_runs_the_weak_forward():
    """The weak forward is first run by the (no-grad) labeller; the feature perturbation loss
    must still train the encoder, as UniMatch's pred_u_w_fp does."""
    for fp_decode in ('joint', 'separate'):
        model = _adapter(fp_decode=fp_decode)
        ctx = _ctx(model)
        out = model.terms['unl'](ctx)
        out['loss_fp'].backward()
        assert model.student.conv.weight.grad is not None
        assert model.student.conv.weight.grad.abs().sum() > 0
