"""OHEM cross-entropy (UniMatch util/ohem.py) on hand-made probabilities."""

import math

import torch

from uda.losses import ohem_cross_entropy


def _case():
    p = torch.tensor([0.9, 0.6, 0.8, 0.3, 0.5])  # probability of the true class 0
    logits = torch.stack([p.log(), (1 - p).log()])[None, :, None, :]  # [1, 2, 1, 5]
    target = torch.tensor([[[0, 0, 0, 0, 255]]])  # the last pixel is ignored
    return logits, target


def _ce(*probs):
    return sum(-math.log(q) for q in probs) / len(probs)


def test_ohem_keeps_pixels_below_the_threshold_or_the_kth_hardest():
    logits, target = _case()
    # min_kept 1: the hardest pixel (0.3) is below 0.7, so the threshold stays 0.7.
    out = ohem_cross_entropy(logits, target, thresh=0.7, min_kept=1)
    assert math.isclose(float(out), _ce(0.6, 0.3), rel_tol=1e-5)
    # min_kept 3: the 3rd hardest (0.8) is above 0.7 and becomes the threshold.
    out = ohem_cross_entropy(logits, target, thresh=0.7, min_kept=3)
    assert math.isclose(float(out), _ce(0.6, 0.8, 0.3), rel_tol=1e-5)
    # More to keep than labelled pixels: plain cross-entropy over every labelled pixel.
    out = ohem_cross_entropy(logits, target, thresh=0.7, min_kept=10)
    assert math.isclose(float(out), _ce(0.9, 0.6, 0.8, 0.3), rel_tol=1e-5)


def test_ohem_in_source_ce_of_the_cityscapes_leaves():
    from mmengine.config import Config

    for leaf in (
        'configs/semi/unimatch_deeplabv3plus-resnet101_84k_cityscapes-1of16-801x801.py',
        'configs/semi/supervised_deeplabv3plus-resnet101_84k_cityscapes-1of16-801x801.py',
    ):
        sup = Config.fromfile(leaf).model.terms.sup
        assert (sup.ohem_thresh, sup.ohem_min_kept) == (0.7, 200000), leaf


def test_source_ce_uses_ohem_when_asked():
    from tests.conftest import toy_batch
    from uda.registry import MODELS

    def loss(**sup):
        torch.manual_seed(0)
        model = MODELS.build(
            dict(
                type='Adapter',
                segmentor=dict(type='ToySegmentor'),
                data_preprocessor=dict(type='SegDataPreprocessor', size_divisor=1),
                terms=dict(src=dict(type='SourceCE', **sup)),
            )
        )
        data = model.data_preprocessor(toy_batch(), True)
        ctx = model.make_context(data['inputs'], data['data_samples'])
        return model.terms['src'](ctx)['loss_ce'], ctx

    plain, _ = loss()
    # thresh 0: only the 10 hardest labelled pixels are kept (the toy network is near-uniform,
    # so every pixel is below 0.7 and the default thresh would keep them all).
    ohem, ctx = loss(ohem_thresh=0.0, ohem_min_kept=10)
    expected = ohem_cross_entropy(ctx.student('source')['logits'], ctx.labels('source'), 0.0, 10)
    torch.testing.assert_close(ohem, expected)
    assert not torch.isclose(ohem, plain)
