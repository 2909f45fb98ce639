"""uda.visualization: colours, panels and overlays on hand-computed tiny arrays."""

import numpy as np
import pytest
import torch

from uda.visualization import colorize, overlay, panel, to_rgb

PALETTE = [(10, 20, 30), (200, 100, 0)]


def test_colorize_maps_ids_and_blackens_ignore() -> None:
    label = torch.tensor([[0, 1], [255, 7]])
    rgb = colorize(label, PALETTE)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 2, 3)
    assert rgb[0, 0].tolist() == [10, 20, 30] and rgb[0, 1].tolist() == [200, 100, 0]
    assert rgb[1].tolist() == [[0, 0, 0], [0, 0, 0]]  # ignore (255) and ids past the palette
    np.testing.assert_array_equal(colorize(label.numpy(), PALETTE), rgb)


def test_to_rgb_is_channels_last_uint8() -> None:
    img = torch.arange(12, dtype=torch.float32).view(3, 2, 2)
    out = to_rgb(img)
    assert out.dtype == np.uint8 and out.shape == (2, 2, 3)
    assert out[0, 1].tolist() == [1, 5, 9]


def test_panel_pads_short_tiles_and_separates_with_white() -> None:
    a = np.full((2, 1, 3), 7, np.uint8)
    b = np.full((1, 1), 9, np.uint8)  # grey, shorter
    out = panel([a, b])
    assert out.shape == (2, 1 + 2 + 1, 3)
    assert (out[:, 1:3] == 255).all()
    assert out[0, 3].tolist() == [9, 9, 9] and out[1, 3].tolist() == [0, 0, 0]
    assert out[:, 0].tolist() == [[7, 7, 7], [7, 7, 7]]


def test_overlay_blends_and_rounds() -> None:
    img = np.array([[[0, 100, 255]]], np.uint8)
    col = np.array([[[255, 0, 0]]], np.uint8)
    assert overlay(img, col, 0.5).tolist() == [[[128, 50, 128]]]  # 127.5 -> 128, 50, 127.5 -> 128
    assert overlay(img, col, 0.0).tolist() == img.tolist()
    with pytest.raises(ValueError, match='differ in size'):
        overlay(img, np.zeros((2, 1, 3), np.uint8))
