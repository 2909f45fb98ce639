"""Single-stage CAM losses against hand-computed values."""

import math

import torch
import torch.nn.functional as F

from uda.losses.cam import balanced_mask_ce, focal_mask_penalty, ngwp_scores, pseudo_masks


def test_ngwp_hand_computed():
    # Two pixels; channel 0 = constant background logit 1, channel 1 = a class.
    # Pixel 1: logits (1, 1) -> m = (1/2, 1/2); pixel 2: (1, 1 + ln 3) -> m = (1/4, 3/4).
    x = torch.tensor([[[[1.0, 1.0]], [[1.0, 1.0 + math.log(3.0)]]]])
    m = x.softmax(1)
    y = ngwp_scores(x, m)[0]
    assert math.isclose(y[0].item(), (1 * 0.5 + 1 * 0.25) / (1 + 0.75), rel_tol=1e-6)
    fg = (1 * 0.5 + (1 + math.log(3.0)) * 0.75) / (1 + 1.25)
    assert math.isclose(y[1].item(), fg, rel_tol=1e-6)


def test_focal_penalty_hand_computed():
    m = torch.tensor([[[[0.5, 0.75]], [[0.0, 0.0]]]])  # mean masks 0.625 and 0
    p = focal_mask_penalty(m, power=3.0, lam=0.01)[0]
    assert math.isclose(p[0].item(), 0.375**3 * math.log(0.635), rel_tol=1e-6)
    assert math.isclose(p[1].item(), math.log(0.01), rel_tol=1e-6)  # an empty mask: log(lambda)


def test_pseudo_mask_rules_on_hand_made_cams():
    # 4 pixels x (background, class a, class b, class c).
    masks = torch.tensor(
        [
            [0.90, 0.50, 0.10, 0.10],  # bg: peak 0.9, threshold 0.7 * 0.9 = 0.63 -> pixel 0
            [0.10, 0.50, 0.80, 0.10],  # a: peak 0.8, threshold 0.48 -> pixels 1, 2
            [0.00, 0.60, 0.10, 0.30],  # b: peak 0.6, threshold 0.36 -> pixel 1 (claimed twice)
            [0.00, 0.05, 0.10, 0.15],  # c: 0.6 * 0.15 = 0.09 < floor 0.2 -> no pixel
        ]
    ).view(1, 4, 1, 4)
    pseudo = pseudo_masks(masks, fg_ratio=0.6, bg_ratio=0.7, floor=0.2)[0, :, 0]
    expected = torch.tensor(
        [
            [1.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 1.0, 0.0],  # pixel 1 dropped: claimed by a and b
            [0.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0],
        ]
    )
    assert torch.equal(pseudo, expected)
    # Background ratio 0.7, not 0.6: a background pixel at 0.6 of the peak stays unclaimed.
    bg_only = torch.tensor([1.0, 0.65]).view(1, 1, 1, 2)
    assert pseudo_masks(bg_only)[0, 0, 0].tolist() == [1.0, 0.0]


def test_balanced_ce_hand_computed_and_gated_by_required_classes():
    logits = torch.tensor([[[[2.0, 0.0, 1.0, 0.0]], [[0.0, 1.0, 0.5, 3.0]]]])  # [1, 2, 1, 4]
    # Pixel 0 background, pixels 1-2 class 1, pixel 3 unclaimed (ignored).
    pseudo = torch.tensor([[[[1.0, 0.0, 0.0, 0.0]], [[0.0, 1.0, 1.0, 0.0]]]])
    loss, counted = balanced_mask_ce(logits, pseudo, torch.tensor([[1.0, 1.0]]))
    ce = F.cross_entropy(logits[0, :, 0].t(), torch.tensor([0, 1, 1, 0]), reduction='none')
    # N = 3 claimed pixels: background weight (3 - 1) / (1 + 3), class 1 weight (3 - 2) / 4.
    expected = (0.5 * ce[0] + 0.25 * ce[1] + 0.25 * ce[2]) / 4  # mean over all 4 pixels
    assert math.isclose(loss.item(), expected.item(), rel_tol=1e-6)
    assert counted.tolist() == [1.0]
    # A labelled class without pseudo pixels: the image does not count.
    pseudo_missing = pseudo.clone()
    pseudo_missing[:, 1] = 0
    loss, counted = balanced_mask_ce(logits, pseudo_missing, torch.tensor([[1.0, 1.0]]))
    assert loss.item() == 0.0 and counted.tolist() == [0.0]
    # Not required (an appended training-only background): counts without it.
    no_bg = pseudo.clone()
    no_bg[:, 0] = 0
    _, counted = balanced_mask_ce(logits, no_bg, torch.tensor([[0.0, 1.0]]))
    assert counted.tolist() == [1.0]
