"""Inference modes: golden sliding-window averages, flip TTA, padding, teacher selection."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
from torch import Tensor

from uda.evaluation.inference import (
    aug_inference,
    check_test_cfg,
    slide_inference,
    whole_inference,
    window_starts,
)
from uda.methods.adapter import Adapter


def window_mean(x: Tensor) -> Tensor:
    """Stand-in network: every pixel's logit is the mean of its input window (1 class)."""
    return x.mean((1, 2, 3), keepdim=True).expand(-1, 1, *x.shape[-2:]).clone()


def test_window_starts_golden() -> None:
    assert window_starts(6, 4, 2) == [0, 2]
    assert window_starts(7, 4, 2) == [0, 2, 3]  # last window shifted back to end at 7
    assert window_starts(3, 4, 2) == [0]
    assert window_starts(8, 4, 4) == [0, 4]


def test_slide_golden_1d() -> None:
    # Columns hold 0..5; windows cover columns 0-3 (mean 1.5) and 2-5 (mean 3.5).
    x = torch.arange(6.0).expand(1, 1, 4, 6).clone()
    out = slide_inference(window_mean, x, crop_size=(4, 4), stride=(2, 2))
    expected = torch.tensor([1.5, 1.5, 2.5, 2.5, 3.5, 3.5]).expand(4, 6)
    torch.testing.assert_close(out[0, 0], expected)


def test_slide_golden_2d() -> None:
    # 5x5 image 0..24, crop 3 stride 2: window means 6 (top-left), 8, 16, 18 (bottom-right);
    # the centre pixel lies in all four windows: (6 + 8 + 16 + 18) / 4 = 12.
    x = torch.arange(25.0).reshape(1, 1, 5, 5)
    out = slide_inference(window_mean, x, crop_size=3, stride=2)[0, 0]
    assert out[0, 0] == 6 and out[0, 4] == 8 and out[4, 0] == 16 and out[4, 4] == 18
    assert out[2, 2] == 12
    assert out[0, 2] == 7 and out[2, 0] == 11 and out[2, 4] == 13 and out[4, 2] == 17


def test_slide_equals_whole_for_pointwise_net() -> None:
    net = nn.Conv2d(3, 5, 1)
    x = torch.randn(2, 3, 13, 17)
    with torch.no_grad():
        torch.testing.assert_close(slide_inference(net, x, (8, 8), (5, 6)), net(x))


def test_slide_rejects_gaps() -> None:
    with pytest.raises(ValueError, match='stride'):
        slide_inference(window_mean, torch.zeros(1, 1, 8, 8), crop_size=4, stride=5)


def symmetric_conv(seed: int = 0) -> nn.Conv2d:
    torch.manual_seed(seed)
    conv = nn.Conv2d(3, 5, 3, padding=1)
    with torch.no_grad():  # a kernel equal to its mirror image makes the net flip-equivariant
        conv.weight.copy_((conv.weight + conv.weight.flip(-1)) / 2)
    return conv


def test_flip_tta_of_equivariant_net_equals_plain() -> None:
    net = symmetric_conv()
    x = torch.randn(2, 3, 12, 20)
    with torch.no_grad():
        plain = net(x).softmax(1)
        tta = aug_inference(net, x, scales=(1.0,), flip=True)
    torch.testing.assert_close(tta, plain, atol=1e-6, rtol=1e-5)
    assert torch.equal(tta.argmax(1), plain.argmax(1))


def test_flip_tta_changes_non_equivariant_net() -> None:
    torch.manual_seed(0)
    net = nn.Conv2d(3, 5, 3, padding=1)
    x = torch.randn(1, 3, 12, 20)
    with torch.no_grad():
        assert not torch.allclose(aug_inference(net, x, (1.0,), flip=True), net(x).softmax(1))


def test_multiscale_shapes_and_probabilities() -> None:
    net = symmetric_conv()
    x = torch.randn(1, 3, 15, 22)
    with torch.no_grad():
        out = aug_inference(net, x, scales=(0.5, 1.0, 1.75), flip=True, size_divisor=8)
    assert out.shape == (1, 5, 15, 22)
    torch.testing.assert_close(out.sum(1), torch.ones(1, 15, 22))


def test_whole_pads_to_divisor_and_crops_back() -> None:
    conv = nn.Conv2d(3, 4, 3, padding=1)

    def strict(x: Tensor) -> Tensor:
        assert x.shape[-2] % 8 == 0 and x.shape[-1] % 8 == 0, 'net needs multiples of 8'
        return conv(x)

    x = torch.randn(1, 3, 13, 21)
    with torch.no_grad():
        out = whole_inference(strict, x, size_divisor=8)
        ref = conv(torch.nn.functional.pad(x, (0, 3, 0, 3)))[..., :13, :21]
    torch.testing.assert_close(out, ref)


@pytest.mark.parametrize(
    'bad, match',
    [
        (dict(mode='sliding'), 'mode'),
        (dict(mode='slide'), 'crop_size and stride'),
        (dict(crop_size=4), 'together'),
        (dict(which='ema'), 'which'),
        (dict(scale=(1.0,)), 'unknown keys'),
        (dict(mode='aug', scales=()), 'scales'),
    ],
)
def test_test_cfg_errors(bad: dict, match: str) -> None:
    with pytest.raises((KeyError, ValueError), match=match):
        check_test_cfg(bad)


class TeacherAdapter(Adapter):
    """An adapter with a second network under ``teacher`` (stands in for the SAC teacher)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.teacher = copy.deepcopy(self.student)
        with torch.no_grad():
            for p in self.teacher.parameters():
                p.add_(torch.randn_like(p))

    def segmentor_for(self, which: str = 'student') -> nn.Module:
        return self.teacher if which == 'teacher' else super().segmentor_for(which)


def adapter(cls=Adapter, **test_cfg) -> Adapter:
    torch.manual_seed(0)
    model = cls(
        segmentor=dict(type='ToySegmentor', num_classes=5),
        data_preprocessor=dict(type='SegDataPreprocessor', size_divisor=8),
        terms=dict(src=dict(type='SourceCE')),
        test_cfg=test_cfg,
    )
    return model.eval()


def test_predict_uses_teacher_when_asked() -> None:
    x = torch.randn(1, 3, 16, 24)
    student = adapter(TeacherAdapter)
    teacher = adapter(TeacherAdapter, which='teacher')
    teacher.load_state_dict(student.state_dict())
    with torch.no_grad():
        s_logits, t_logits = student.inference(x), teacher.inference(x)
        torch.testing.assert_close(s_logits, student.student(x))
        torch.testing.assert_close(t_logits, student.teacher(x))
    assert not torch.allclose(s_logits, t_logits)
    pred = teacher.predict(x)[0]['pred_sem_seg']
    assert torch.equal(pred, t_logits[0].argmax(0))


def test_teacher_without_teacher_is_an_error() -> None:
    with pytest.raises(ValueError, match='teacher'):
        adapter(which='teacher').predict(torch.randn(1, 3, 8, 8))


@pytest.mark.parametrize(
    'cfg',
    [
        dict(mode='whole'),
        dict(mode='slide', crop_size=8, stride=4),
        dict(mode='aug', scales=(0.75, 1.0), flip=True),
    ],
)
def test_adapter_predict_modes_crop_back(cfg: dict) -> None:
    model = adapter(**cfg)
    x = torch.randn(2, 3, 16, 24)
    out = model.predict(x, [dict(img_shape=(13, 20)), dict(img_shape=(16, 24))])
    assert out[0]['pred_sem_seg'].shape == (13, 20) and out[1]['pred_sem_seg'].shape == (16, 24)
