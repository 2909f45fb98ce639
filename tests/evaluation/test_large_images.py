"""Large images in tools/infer.py (issue 25, item 2): above ``max_pixels`` an image is
predicted by sliding windows one row at a time (``banded_slide``): the ids of
``slide_inference``, windows no larger than the crop, a buffer one window high, a progress bar.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn as nn

from uda.evaluation.image_predictor import ImagePredictor, banded_slide
from uda.evaluation.inference import slide_inference, window_starts

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))


class Recorder(nn.Module):
    """A 3x3 conv (so windows differ at their borders) that records each input's size."""

    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, classes, 3, padding=1)
        self.sizes: list[tuple[int, int]] = []

    def forward(self, x):
        self.sizes.append(tuple(x.shape[-2:]))
        return self.conv(x)


@pytest.mark.parametrize(
    'hw,crop,stride',
    [
        ((70, 90), (32, 32), (20, 20)),
        ((64, 96), (32, 48), (32, 48)),
        ((20, 30), (32, 32), (16, 16)),
    ],
    ids=['overlapping', 'tiled', 'image below the crop'],
)
def test_banded_slide_gives_the_ids_of_slide_inference(hw, crop, stride):
    image = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (*hw, 3), dtype=np.uint8))
    net = Recorder()

    def normalize(window):
        return window.permute(2, 0, 1)[None].float() / 255 - 0.5

    with torch.no_grad():
        ids = banded_slide(net, image, normalize, crop, stride, size_divisor=8)
        ref = slide_inference(net, normalize(image), crop, stride, size_divisor=8)[0].argmax(0)
    assert np.array_equal(ids, ref.numpy())
    n = len(window_starts(hw[0], crop[0], stride[0])) * len(
        window_starts(hw[1], crop[1], stride[1])
    )
    windows = net.sizes[: len(net.sizes) // 2]  # banded_slide's calls, then slide_inference's
    assert len(windows) == n
    assert all(h <= max(crop[0], 8) and w <= max(crop[1], 8) for h, w in windows)


def test_predictor_switches_to_windows_above_max_pixels(capsys):
    net = Recorder()
    image = np.random.default_rng(1).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    pred = ImagePredictor(
        net,
        (0, 0, 0),
        (255, 255, 255),
        8,
        list('abcde'),
        [(0, 0, 0)] * 5,
        test_cfg=dict(mode='whole', crop_size=(24, 24), stride=(16, 16)),
        max_pixels=50 * 50,
    )
    with pytest.warns(UserWarning, match=r'big\.jpg: 80x60 pixels is above max_pixels.*windows'):
        ids = pred(image, 'big.jpg')
    assert net.sizes and max(net.sizes) <= (24, 24)  # never the whole image
    assert 'big.jpg: window rows' in capsys.readouterr().err  # the progress bar
    x = pred.preprocessor.normalize(torch.from_numpy(image).permute(2, 0, 1)[None].float())
    with torch.no_grad():
        ref = slide_inference(net, x, (24, 24), (16, 16), 8)[0].argmax(0).numpy()
    assert np.array_equal(ids, ref)
    net.sizes.clear()
    small = ImagePredictor(net, (0, 0, 0), (255, 255, 255), 8, list('abcde'), [(0, 0, 0)] * 5)
    small(image[:20, :30])  # below max_pixels: one forward of the whole (padded) image
    assert net.sizes == [(24, 32)]


@pytest.mark.slow
def test_8000x6000_photo_in_bounded_memory(tmp_path):
    """The full size in a fresh process: what prediction adds to the peak resident memory
    stays far below the 4.2 GB that ``slide_inference`` needs at 8000x6000 (a float32 score
    map of 19 classes, 3.6 GB, and the normalised image, 0.6 GB)."""
    script = textwrap.dedent(f"""
        import resource, sys
        sys.path.insert(0, {ROOT!r})
        import numpy as np, torch
        from uda.evaluation.image_predictor import ImagePredictor
        torch.manual_seed(0)
        net = torch.nn.Conv2d(3, 19, 1)
        image = np.zeros((6000, 8000, 3), np.uint8)
        image[:, :, 0] = np.arange(8000, dtype=np.uint8)[None]
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        pred = ImagePredictor(net, (0, 0, 0), (255, 255, 255), 8, [str(i) for i in range(19)],
                              [(0, 0, 0)] * 19, test_cfg=dict(mode='slide',
                              crop_size=(512, 512), stride=(512, 512)))
        with torch.no_grad():
            ids = pred(image, 'photo')
        assert ids.shape == (6000, 8000)
        print(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
    """)
    out = subprocess.run(
        [sys.executable, '-c', script],
        capture_output=True,
        text=True,
        timeout=1200,
        env=dict(os.environ, OMP_NUM_THREADS='1'),
    )
    assert out.returncode == 0, out.stderr[-2000:]
    before, peak = (int(v) for v in out.stdout.split()[-2:])
    print(f'peak RSS {peak} MiB, {peak - before} MiB above the loaded image')
    assert peak - before < 800, (before, peak)
