"""Images as they come (issue 25, item 2): every format and pixel type either read as
documented (``uda.data.base.read_image``) or one clear error, for the datasets and for
``tools/infer.py``; EXIF orientation applied by the inference tool only; labels with a palette
or 16-bit encoding mapped or rejected by name. Every file is written by the test."""

from __future__ import annotations

import io
import runpy
import sys
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from uda.data import ListFileDataset
from uda.data.base import read_image, read_label

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (6, 10, 3), dtype=np.uint8)  # H=6, W=10
GREY = RNG.integers(0, 256, (6, 10), dtype=np.uint8)


def _grey3(a):
    return np.repeat(a[..., None], 3, axis=2)


def _exif_rotated(path):
    """A JPEG stored 10x6 (WxH) with EXIF orientation 6: shown rotated 90 degrees clockwise."""
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(RGB).save(path, 'JPEG', quality=95, exif=exif)
    stored = np.asarray(Image.open(path).convert('RGB'))
    return stored, np.rot90(stored, k=-1)  # (as stored, as a person sees it)


def _write(kind, path):
    """Write one file; return (expected array as stored, expected upright or None)."""
    if kind == 'grey L':
        Image.fromarray(GREY).save(path)
        return _grey3(GREY), None
    if kind == 'RGBA':
        rgba = np.dstack([RGB, np.full((6, 10), 7, np.uint8)])
        Image.fromarray(rgba, 'RGBA').save(path)
        return RGB, None  # alpha dropped, the stored colours kept
    if kind == 'palette P':
        im = Image.fromarray(RGB).quantize(8)
        im.save(path)
        return np.asarray(im.convert('RGB')), None
    if kind == 'palette with transparency':
        im = Image.fromarray(RGB).quantize(8)
        im.info['transparency'] = 0
        im.save(path, transparency=0)
        return np.asarray(im.convert('RGBA'))[..., :3], None
    if kind == '16-bit grey PNG':
        wide = (GREY.astype(np.uint16) * 257 + 100).astype(np.uint16)
        wide[0, 0] = 65535
        Image.fromarray(wide).save(path)
        expected = ((wide.astype(np.int64) + 128) // 257).astype(np.uint8)
        return _grey3(expected), None
    if kind == 'CMYK JPEG':
        Image.fromarray(RGB).convert('CMYK').save(path, 'JPEG', quality=95)
        return np.asarray(Image.open(path).convert('RGB')), None
    if kind == 'EXIF-rotated JPEG':
        return _exif_rotated(path)
    if kind == 'WebP':
        Image.fromarray(RGB).save(path, 'WEBP', lossless=True)
        return RGB, None
    if kind == 'TIFF':
        Image.fromarray(RGB).save(path, 'TIFF')
        return RGB, None
    if kind == '1x1':
        Image.fromarray(RGB[:1, :1]).save(path)
        return RGB[:1, :1], None
    raise ValueError(kind)


KINDS = {
    'grey L': 'png',
    'RGBA': 'png',
    'palette P': 'png',
    'palette with transparency': 'png',
    '16-bit grey PNG': 'png',
    'CMYK JPEG': 'jpg',
    'EXIF-rotated JPEG': 'jpg',
    'WebP': 'webp',
    'TIFF': 'tif',
    '1x1': 'png',
}


@pytest.mark.parametrize('kind', list(KINDS))
def test_read_image_converts_as_documented(tmp_path, kind):
    path = str(tmp_path / f'x.{KINDS[kind]}')
    stored, upright = _write(kind, path)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # no PIL warning on any of them
        got = read_image(path)
        shown = read_image(path, exif_transpose=True)
    assert got.dtype == np.uint8 and got.ndim == 3 and got.shape[2] == 3
    assert np.array_equal(got, stored)  # datasets: pixels as stored
    assert np.array_equal(shown, stored if upright is None else upright)  # the tools


@pytest.mark.parametrize('kind', list(KINDS))
def test_dataset_reads_every_kind_without_rotating(tmp_path, kind):
    (tmp_path / 'img').mkdir()
    (tmp_path / 'lbl').mkdir()
    stored, _ = _write(kind, str(tmp_path / f'img/a.{KINDS[kind]}'))
    Image.fromarray(np.zeros(stored.shape[:2], np.uint8)).save(tmp_path / 'lbl/a.png')
    (tmp_path / 'l.txt').write_text(f'img/a.{KINDS[kind]} lbl/a.png\n')
    sample = ListFileDataset(data_root=str(tmp_path), list_file='l.txt')[0]
    assert sample['inputs'].shape == (3, *stored.shape[:2])
    assert torch.equal(sample['inputs'], torch.from_numpy(np.array(stored)).permute(2, 0, 1))


def test_dataset_names_exif_when_the_label_fits_the_rotated_view(tmp_path):
    (tmp_path / 'img').mkdir()
    (tmp_path / 'lbl').mkdir()
    _, upright = _exif_rotated(str(tmp_path / 'img/a.jpg'))
    Image.fromarray(np.zeros(upright.shape[:2], np.uint8)).save(tmp_path / 'lbl/a.png')
    (tmp_path / 'l.txt').write_text('img/a.jpg lbl/a.png\n')
    ds = ListFileDataset(data_root=str(tmp_path), list_file='l.txt')
    for check in (ds.check_pair_sizes, lambda: ds[0]):
        with pytest.raises(ValueError, match=r'is 6x10 but image .*a\.jpg is 10x6.*EXIF orien'):
            check()


@pytest.mark.parametrize(
    'kind,pattern',
    [
        ('float TIFF', r'Image .*x\.tif holds 32-bit floating-point pixels.*Convert it'),
        ('truncated PNG', r'Cannot read image .*x\.png .*truncated'),
        ('not an image', r'Cannot read image .*x\.webp .*not an image'),
    ],
)
def test_unreadable_images_are_one_clear_error(tmp_path, kind, pattern):
    if kind == 'float TIFF':
        path = tmp_path / 'x.tif'
        Image.fromarray(GREY.astype(np.float32) / 255).save(path)
    elif kind == 'truncated PNG':
        path = tmp_path / 'x.png'
        buf = io.BytesIO()
        Image.fromarray(RGB).save(buf, 'PNG')
        path.write_bytes(buf.getvalue()[:60])
    else:
        path = tmp_path / 'x.webp'
        path.write_text('hello')
    with pytest.raises((OSError, ValueError), match=pattern):
        read_image(str(path))


# --------------------------------------------------------------------------- labels


def _label_dataset(tmp_path, label: Image.Image, **options):
    (tmp_path / 'img').mkdir(exist_ok=True)
    (tmp_path / 'lbl').mkdir(exist_ok=True)
    Image.fromarray(RGB).save(tmp_path / 'img/a.png')
    label.save(tmp_path / 'lbl/a.png')
    (tmp_path / 'l.txt').write_text('img/a.png lbl/a.png\n')
    return ListFileDataset(data_root=str(tmp_path), list_file='l.txt', **options)


def test_palette_label_reads_indices_not_colours(tmp_path):
    ids = (GREY % 5).astype(np.uint8)
    ids[0] = 255
    label = Image.fromarray(ids, 'P')
    label.putpalette([v for i in range(256) for v in (i * 7 % 256, 50, 200)])
    gt = _label_dataset(tmp_path, label)[0]['data_samples']['gt_sem_seg']
    assert torch.equal(gt, torch.from_numpy(ids).long())


def test_16bit_label_mapped_or_rejected_by_name(tmp_path):
    ids = np.full((6, 10), 1000, np.uint16)
    ids[0, 0] = 7
    label = Image.fromarray(ids)
    assert label.mode == 'I;16'
    ds = _label_dataset(tmp_path, label, label_map={1000: 3, 7: 0})
    gt = ds[0]['data_samples']['gt_sem_seg']
    assert gt[0, 0] == 0 and (gt.flatten()[1:] == 3).all()
    ds = _label_dataset(tmp_path, label)
    with pytest.raises(ValueError, match=r'lbl/a\.png has values \[1000\] outside.*label_map'):
        ds[0]


def test_colour_label_rejected_grey_rgb_label_read(tmp_path):
    with pytest.raises(ValueError, match=r'Label .*lbl/a\.png is a colour \(RGB\) image.*ids'):
        _label_dataset(tmp_path, Image.fromarray(RGB))[0]
    ids = (GREY % 5).astype(np.uint8)
    gt = _label_dataset(tmp_path, Image.fromarray(_grey3(ids)))[0]['data_samples']['gt_sem_seg']
    assert torch.equal(gt, torch.from_numpy(ids).long())
    with pytest.raises(ValueError, match=r'Label .*x\.tif holds floating-point values'):
        path = tmp_path / 'x.tif'
        Image.fromarray(GREY.astype(np.float32)).save(path)
        read_label(str(path))


# --------------------------------------------------------------------------- tools/infer.py


def test_infer_tool_on_every_kind(tmp_path, monkeypatch):
    """One folder with every kind: a mask per file, upright-sized (EXIF applied)."""
    from tests.export.test_export import toy_cfg, write_checkpoint

    cfg = toy_cfg()
    cfg.dump(str(tmp_path / 'cfg.py'))
    write_checkpoint(str(tmp_path / 'ckpt.pth'), cfg)
    expected = {}
    for i, kind in enumerate(KINDS):
        stored, upright = _write(kind, str(tmp_path / f'{i}.{KINDS[kind]}'))
        expected[f'{i}.png'] = (stored if upright is None else upright).shape[:2]
    argv = [str(tmp_path), '--model', str(tmp_path / 'ckpt.pth'), '--config']
    argv += [str(tmp_path / 'cfg.py'), '--out-dir', str(tmp_path / 'out')]
    monkeypatch.setattr(sys, 'argv', ['tools/infer.py', *argv])
    runpy.run_path('tools/infer.py', run_name='__main__')
    for name, (h, w) in expected.items():
        mask = Image.open(tmp_path / 'out' / 'masks' / name)
        assert mask.mode == 'P' and mask.size == (w, h), name
