"""tools/infer.py: image folders of any size, from a checkpoint or an ONNX export."""

from __future__ import annotations

import runpy
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from uda.data.base import read_image
from uda.evaluation.image_predictor import ImagePredictor, list_images

pytest.importorskip('onnxruntime', reason='ONNX inference needs onnxruntime')


def make_images(folder, sizes=((37, 53), (64, 40), (17, 90))) -> list[str]:
    rng = np.random.default_rng(0)
    (folder / 'sub').mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (h, w) in enumerate(sizes):
        p = folder / ('sub' if i == 2 else '.') / f'img{i}.{"jpg" if i == 1 else "png"}'
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    return paths


def run_tool(path: str, argv: list[str]) -> None:
    old = sys.argv
    sys.argv = [path] + argv
    try:
        runpy.run_path(path, run_name='__main__')
    finally:
        sys.argv = old


def test_predictor_pads_to_stride_and_crops_back() -> None:
    conv = nn.Conv2d(3, 4, 3, padding=1)

    def strict(x):
        assert x.shape[-2] % 16 == 0 and x.shape[-1] % 16 == 0, 'needs multiples of 16'
        return conv(x)

    pred = ImagePredictor(strict, (0, 0, 0), (255, 255, 255), 16, list('abcd'), [(0, 0, 0)] * 4)
    img = np.random.default_rng(0).integers(0, 256, (21, 35, 3), dtype=np.uint8)
    label = pred(img)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        ref = conv(torch.nn.functional.pad(x, (0, 13, 0, 11)))[0, :, :21, :35].argmax(0)
    assert label.shape == (21, 35) and np.array_equal(label, ref.numpy())


def test_list_and_read_errors(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match='No images found'):
        list_images(str(tmp_path / '*.png'))
    bad = tmp_path / 'broken.png'
    bad.write_text('not an image')
    with pytest.raises(OSError, match='Cannot read image .*broken.png'):
        read_image(str(bad))


def test_infer_tool_checkpoint_and_onnx_agree(tmp_path) -> None:
    from tests.export.test_export import toy_cfg, write_checkpoint
    from uda.export import export

    cfg = toy_cfg()
    cfg.dump(str(tmp_path / 'cfg.py'))
    write_checkpoint(str(tmp_path / 'ckpt.pth'), cfg)
    export(cfg, str(tmp_path / 'ckpt.pth'), 'onnx', str(tmp_path / 'm.onnx'))
    paths = make_images(tmp_path / 'imgs')
    run_tool(
        'tools/infer.py',
        [
            str(tmp_path / 'imgs'),
            '--model',
            str(tmp_path / 'ckpt.pth'),
            '--config',
            str(tmp_path / 'cfg.py'),
            '--out-dir',
            str(tmp_path / 'o_pth'),
        ],
    )
    run_tool(
        'tools/infer.py',
        [
            str(tmp_path / 'imgs' / '**' / '*.*'),
            '--model',
            str(tmp_path / 'm.onnx'),
            '--out-dir',
            str(tmp_path / 'o_onnx'),
        ],
    )
    for rel, src in zip(['img0.png', 'img1.png', 'sub/img2.png'], paths):
        a = Image.open(tmp_path / 'o_pth' / 'masks' / rel)
        b = Image.open(tmp_path / 'o_onnx' / 'masks' / rel)
        assert a.mode == 'P' and a.size == Image.open(src).size
        assert np.array_equal(np.array(a), np.array(b))
        ov = Image.open(tmp_path / 'o_onnx' / 'overlays' / rel)
        assert ov.size == a.size and ov.mode == 'RGB'


def test_infer_tool_errors(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.delenv('UDA_DEBUG', raising=False)
    make_images(tmp_path / 'imgs')
    with pytest.raises(SystemExit) as code:
        run_tool(
            'tools/infer.py',
            [str(tmp_path / 'imgs'), '--model', 'x.pth', '--out-dir', str(tmp_path / 'o')],
        )
    assert code.value.code == 2
    assert capsys.readouterr().err.startswith('error: A .pth checkpoint needs --config')
    with pytest.raises(SystemExit):
        (tmp_path / 'm.onnx').write_bytes(b'')
        run_tool(
            'tools/infer.py',
            [
                str(tmp_path / 'imgs'),
                '--model',
                str(tmp_path / 'm.onnx'),
                '--out-dir',
                str(tmp_path / 'o'),
            ],
        )
    err = capsys.readouterr().err
    assert err.startswith('error: No sidecar') and 'Traceback' not in err
