"""Mixing masks: ClassMix per image, CutMix boxes, MIC block masks, and mix."""

import math

import pytest
import torch

from uda.augment.mixing import block_masks, class_mix_masks, cutmix_boxes, mix


def _two_images():
    # Image 0 holds classes {0, 1, 2, 3} (+ ignore); image 1 holds {5, 7, 9}.
    a = torch.tensor([[0, 0, 1, 1], [2, 2, 3, 255], [0, 1, 2, 3], [255, 3, 2, 1]])
    b = torch.tensor([[5, 5, 7, 7], [9, 9, 9, 5], [7, 7, 5, 5], [9, 5, 7, 255]])
    return torch.stack([a, b])


def test_class_mix_picks_half_of_each_images_own_classes():
    labels = _two_images()
    seen = [set(), set()]
    for seed in range(20):
        masks = class_mix_masks(labels, generator=torch.Generator().manual_seed(seed))
        assert masks.shape == labels.shape and masks.dtype == torch.bool
        for i, (mask, label) in enumerate(zip(masks, labels)):
            chosen = set(label[mask].tolist())
            present = set(label.unique().tolist()) - {255}
            # Whole classes of this image: every pixel of a chosen class, none of the others.
            assert mask.equal(torch.isin(label, torch.tensor(sorted(chosen))))
            assert chosen <= present and len(chosen) == math.ceil(len(present) / 2)
            assert not mask[label == 255].any()
            seen[i].add(frozenset(chosen))
    assert len(seen[0]) > 1 and len(seen[1]) > 1  # random, per image


def test_class_mix_is_reproducible_by_generator():
    labels = _two_images()
    a = class_mix_masks(labels, generator=torch.Generator().manual_seed(1))
    b = class_mix_masks(labels, generator=torch.Generator().manual_seed(1))
    assert a.equal(b)


def test_class_mix_image_without_classes_gives_empty_mask():
    labels = torch.full((1, 4, 4), 255)
    assert not class_mix_masks(labels).any()


def test_mix_composes_images_labels_and_weights_with_one_mask():
    mask = torch.tensor([[[True, False], [False, True]]])
    img_a, img_b = torch.ones(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)
    lbl_a, lbl_b = torch.tensor([[[1, 2], [3, 4]]]), torch.tensor([[[5, 6], [7, 8]]])
    w_a, w_b = torch.ones(1, 2, 2), torch.full((1, 2, 2), 0.25)
    assert mix(mask, img_a, img_b)[0, :, 0].tolist() == [[1.0, 0.0]] * 3
    assert mix(mask, lbl_a, lbl_b).tolist() == [[[1, 6], [7, 4]]]
    assert mix(mask.float(), w_a, w_b).tolist() == [[[1.0, 0.25], [0.25, 1.0]]]
    with pytest.raises(ValueError, match='same B, H, W'):
        mix(mask, torch.ones(1, 3, 4, 4), torch.zeros(1, 3, 4, 4))


def test_cutmix_box_probability_and_area():
    g = torch.Generator().manual_seed(0)
    H, W, n = 64, 48, 2000
    masks = cutmix_boxes(n, H, W, p=0.5, generator=g)
    assert masks.shape == (n, H, W) and masks.dtype == torch.bool
    frac = masks.flatten(1).float().mean(1)
    has_box = frac > 0
    assert abs(has_box.float().mean() - 0.5) < 0.05
    area = frac[has_box]
    assert area.max() <= 0.4 and area.min() >= 0.01  # int() truncation trims small boxes
    assert 0.15 < area.mean() < 0.25  # U(0.02, 0.4) has mean 0.21
    # Each mask is one axis-aligned rectangle.
    for m in masks[has_box][:50]:
        rows, cols = m.any(1), m.any(0)
        assert m.sum() == rows.sum() * cols.sum()
    assert not cutmix_boxes(8, H, W, p=0.0).any()
    assert cutmix_boxes(8, H, W, p=1.0).flatten(1).any(1).all()


def test_cutmix_reproducible_by_generator():
    a = cutmix_boxes(4, 32, 32, generator=torch.Generator().manual_seed(5))
    b = cutmix_boxes(4, 32, 32, generator=torch.Generator().manual_seed(5))
    assert a.equal(b)


def test_block_masks_grid_and_keep_ratio():
    g = torch.Generator().manual_seed(0)
    masks = block_masks(500, 64, 96, block_size=16, mask_ratio=0.7, generator=g)
    assert masks.shape == (500, 64, 96) and masks.dtype == torch.float32
    cells = masks.view(500, 4, 16, 6, 16)  # 4 x 6 grid of 16 px cells
    assert cells.amin((2, 4)).equal(cells.amax((2, 4)))  # constant within each cell
    assert abs(masks.mean() - 0.3) < 0.02  # kept when U(0, 1) > 0.7
    a = block_masks(2, 32, 32, block_size=8, generator=torch.Generator().manual_seed(3))
    b = block_masks(2, 32, 32, block_size=8, generator=torch.Generator().manual_seed(3))
    assert a.equal(b)


def test_class_mix_batch_pool_draws_half_of_the_batch_classes_ignore_included():
    """DACS / DAFormer / MIC ``get_class_masks``: ceil(n / 2) of the n classes of the whole
    batch (torch.unique over all labels, 255 included), a fresh draw per image."""
    # Image 0: classes {1} + ignore; image 1: {3, 4}. Batch pool {1, 3, 4, 255}: 2 per image.
    labels = torch.full((2, 4, 4), 1)
    labels[0, 0] = 255
    labels[1, :, :2], labels[1, :, 2:] = 3, 4
    pool = {1, 3, 4, 255}
    draws, empty0, ignore_pasted, per_image_picks = 600, 0, 0, set()
    g = torch.Generator().manual_seed(0)
    for _ in range(draws):
        masks = class_mix_masks(labels, generator=g, pool='batch')
        for i in range(2):
            chosen = set(labels[i][masks[i]].tolist())
            assert chosen <= pool
            assert masks[i].equal(torch.isin(labels[i], torch.tensor(sorted(chosen) or [-1])))
        empty0 += int(not masks[0].any())
        ignore_pasted += int(masks[0][0].all())
        per_image_picks.add((bool(masks[0].any()), bool(masks[1][:, :2].any())))
    # P(image 0 gets neither 1 nor 255) = C(2,2) / C(4,2) = 1/6; P(255 chosen) = 1/2.
    assert abs(empty0 / draws - 1 / 6) < 0.05
    assert abs(ignore_pasted / draws - 1 / 2) < 0.06
    assert len(per_image_picks) == 4  # the images draw independently
    # The per-image pool never leaves an image with a class empty-handed, nor pastes ignore.
    masks = class_mix_masks(labels, generator=g, pool='image')
    assert masks[0].any() and not masks[0][0].any()


def test_class_mix_batch_pool_odd_count_rounds_up():
    labels = torch.tensor([[[0, 1, 2, 3, 4]]])  # 5 classes -> 3 chosen
    for seed in range(10):
        m = class_mix_masks(labels, generator=torch.Generator().manual_seed(seed), pool='batch')
        assert int(m.sum()) == 3


def test_class_mix_rejects_an_unknown_pool():
    with pytest.raises(ValueError, match="pool='images'"):
        class_mix_masks(_two_images(), pool='images')
