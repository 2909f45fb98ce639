"""One padding helper for batches (SegDataPreprocessor) and single images (inference)."""

import pytest
import torch

from uda.evaluation.inference import pad_to_divisor
from uda.models.data_preprocessor import SegDataPreprocessor, divisible_size, pad_bottom_right


def test_divisible_size_and_bottom_right_padding() -> None:
    assert divisible_size((33, 64), 32) == (64, 64) and divisible_size((5, 7), 1) == (5, 7)
    x = torch.ones(1, 1, 2, 3)
    out = pad_bottom_right(x, (3, 4), value=-1.0)
    assert out[0, 0].tolist() == [[1, 1, 1, -1], [1, 1, 1, -1], [-1, -1, -1, -1]]
    assert pad_bottom_right(x, (2, 3)) is x
    with pytest.raises(ValueError, match='Cannot pad'):
        pad_bottom_right(x, (1, 3))
    assert pad_to_divisor(x, 4).shape[-2:] == (4, 4)


def test_preprocessor_pads_like_inference_and_denormalizes() -> None:
    pre = SegDataPreprocessor(mean=(10, 20, 30), std=(2, 4, 5), size_divisor=4)
    img = torch.full((3, 3, 5), 50, dtype=torch.uint8)
    gt = torch.zeros(1, 3, 5, dtype=torch.long)
    out = pre(dict(inputs=[img], data_samples=[dict(gt_sem_seg=gt)]))
    x = out['inputs']
    assert x.shape == (1, 3, 4, 8) and x[0, :, 0, 0].tolist() == [20.0, 7.5, 4.0]
    assert torch.equal(x, pad_to_divisor(pre.normalize(img[None].float()), 4))
    assert out['data_samples'][0]['gt_sem_seg'][0, 3].tolist() == [255] * 8
    assert torch.allclose(pre.denormalize(x)[..., :3, :5], img[None].float())
