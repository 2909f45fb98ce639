"""tools/convert_checkpoint.py, and foreign files read directly by test / infer / export /
load_from: an ADVENT-layout file (tiny Caffe-style DeepLab-v2, random weights) end to end."""

from __future__ import annotations

import json
import os
import runpy
import sys
from typing import Any, Iterator

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from tests.conftest import toy_runner_cfg
from tests.models.layouts.reference_deeplabv2 import (
    RefResNet,
    randomise,
    tiny_bottleneck_encoder,
    up,
)
from uda.engine.checkpoint import load_checkpoint_file, segmentor_weights
from uda.models.layouts import ForeignCheckpointError, check_load_from
from uda.models.layouts.deeplabv2 import IMG_MEAN_BGR
from uda.registry import MODELS


@pytest.fixture(autouse=True)
def tiny_encoder() -> Iterator[None]:
    with tiny_bottleneck_encoder():
        yield


def run(tool: str, argv: list[str]) -> None:
    old = sys.argv
    sys.argv = [tool] + argv
    try:
        runpy.run_path(tool, run_name='__main__')
    finally:
        sys.argv = old


def advent_file(tmp_path: Any, drop: str | None = None) -> tuple[str, RefResNet]:
    ref = randomise(RefResNet([1, 1, 1, 1], 19, multi=True), 5)
    state = ref.state_dict()
    if drop:
        state.pop(drop)
    path = str(tmp_path / 'gta2cityscapes_advent.pth')
    torch.save(state, path)
    return path, ref


def toy_config(tmp_path: Any, **model: Any) -> str:
    cfg = toy_runner_cfg(str(tmp_path / 'work'))
    cfg.update(
        test_dataloader=cfg['val_dataloader'],
        test_evaluator=dict(type='IoUMetric', protocol='cityscapes19', eval_protocol='synthetic9'),
        test_cfg=dict(type='TestLoop'),
    )
    cfg['model']['data_preprocessor'] = dict(type='SegDataPreprocessor', size_divisor=8)
    cfg['model'].update(model)
    path = str(tmp_path / 'cfg.py')
    Config(cfg).dump(path)
    return path


def reference_labels(ref: RefResNet, image: np.ndarray) -> np.ndarray:
    """The ADVENT evaluation of one RGB image: BGR, minus IMG_MEAN, main output, upsampled."""
    bgr = torch.from_numpy(image[..., ::-1].astype(np.float32).copy()).permute(2, 0, 1)[None]
    x = bgr - torch.tensor(IMG_MEAN_BGR).view(1, 3, 1, 1)
    with torch.no_grad():
        return up(ref(x)[1], x)[0].argmax(0).numpy()


def test_convert_tool_writes_a_uda_checkpoint(tmp_path: Any, capsys: Any) -> None:
    src, ref = advent_file(tmp_path)
    out = tmp_path / 'converted' / 'advent_uda.pth'
    run('tools/convert_checkpoint.py', [src, str(out), '--layout', 'advent'])
    printed = capsys.readouterr().out
    assert 'Advent checkpoint converted' in printed and '0 missing, 0 unexpected' in printed
    assert '"encoder_style": "caffe"' in printed and '"channel_order": "bgr"' in printed
    ckpt = load_checkpoint_file(str(out))  # weights only: the meta is plain data
    foreign = ckpt['meta']['foreign']
    assert foreign['layout'] == 'Advent' and foreign['repository'] == 'valeoai/ADVENT'
    net = MODELS.build(dict(foreign['segmentor'])).eval()
    net.load_state_dict(segmentor_weights(ckpt['state_dict'], 'student', str(out)), strict=True)
    x = torch.randn(1, 3, 40, 48)
    with torch.no_grad():
        torch.testing.assert_close(net(x), up(ref(x)[1], x), atol=1e-5, rtol=1e-5)


def test_convert_tool_below_coverage_writes_nothing(tmp_path: Any, capsys: Any) -> None:
    src, _ = advent_file(tmp_path, drop='layer6.conv2d_list.2.bias')
    out = tmp_path / 'out.pth'
    with pytest.raises(SystemExit) as code:
        run('tools/convert_checkpoint.py', [src, str(out), '--layout', 'advent'])
    assert code.value.code == 2
    err = capsys.readouterr().err
    assert 'Advent layout does not cover' in err and 'net.decoder.branches.2.bias' in err
    assert not out.exists() and not os.path.exists(f'{out}.tmp')


def test_test_tool_reads_a_foreign_file(tmp_path: Any, capsys: Any) -> None:
    src, _ = advent_file(tmp_path)
    cfg = toy_config(tmp_path)
    run('tools/test.py', [cfg, src, '--layout', 'advent', '--work-dir', str(tmp_path / 't1')])
    printed = ''.join(capsys.readouterr())
    assert printed.count('Advent checkpoint converted: ') == 1  # one report line
    assert 'input BGR 0-255' in printed
    report = json.loads((tmp_path / 't1' / 'metrics.json').read_text())
    assert report['num_images'] == 4 and 0.0 <= report['mIoU'] <= 100.0


@pytest.mark.slow
def test_test_tool_same_numbers_from_the_converted_file(tmp_path: Any) -> None:
    src, _ = advent_file(tmp_path)
    cfg = toy_config(tmp_path)
    run('tools/test.py', [cfg, src, '--layout', 'advent', '--work-dir', str(tmp_path / 't1')])
    conv = str(tmp_path / 'advent_uda.pth')
    run('tools/convert_checkpoint.py', [src, conv, '--layout', 'advent'])
    run('tools/test.py', [cfg, conv, '--work-dir', str(tmp_path / 't2')])
    direct, converted = (
        json.loads((tmp_path / t / 'metrics.json').read_text()) for t in ('t1', 't2')
    )
    assert direct == converted


def test_test_tool_ambiguous_file_needs_a_layout(tmp_path: Any, capsys: Any) -> None:
    src, _ = advent_file(tmp_path)
    with pytest.raises(SystemExit):
        run('tools/test.py', [toy_config(tmp_path), src, '--work-dir', str(tmp_path / 't')])
    assert '--layout adaptsegnet|advent' in ''.join(capsys.readouterr())


def test_infer_tool_gives_the_reference_prediction(tmp_path: Any) -> None:
    src, ref = advent_file(tmp_path)
    image = np.random.default_rng(0).integers(0, 256, (36, 44, 3), dtype=np.uint8)
    (tmp_path / 'img').mkdir()
    Image.fromarray(image).save(tmp_path / 'img' / 'a.png')
    argv = [str(tmp_path / 'img'), '--model', src, '--config', toy_config(tmp_path)]
    run('tools/infer.py', argv + ['--layout', 'advent', '--out-dir', str(tmp_path / 'out')])
    mask = np.array(Image.open(tmp_path / 'out' / 'masks' / 'a.png'))
    assert (mask == reference_labels(ref, image)).mean() > 0.99  # BGR, IMG_MEAN, no std


def test_export_tool_records_the_reference_preprocessing(tmp_path: Any) -> None:
    src, _ = advent_file(tmp_path)
    out = str(tmp_path / 'advent.safetensors')
    argv = [toy_config(tmp_path), src, '--format', 'safetensors', '--out', out]
    run('tools/export.py', argv + ['--layout', 'advent'])
    side = json.loads(open(f'{out}.json').read())
    assert side['normalization']['color_order'] == 'BGR'
    assert side['normalization']['mean'] == pytest.approx(list(IMG_MEAN_BGR))
    assert side['normalization']['std'] == [1.0, 1.0, 1.0]
    assert side['architecture']['encoder_style'] == 'caffe'


def test_load_from_warm_starts_from_a_foreign_file(tmp_path: Any) -> None:
    from mmengine.runner import Runner

    src, ref = advent_file(tmp_path)
    conv = str(tmp_path / 'advent_uda.pth')
    run('tools/convert_checkpoint.py', [src, conv, '--layout', 'advent'])
    foreign = load_checkpoint_file(conv)['meta']['foreign']
    pre = dict(foreign['data_preprocessor'], type='SegDataPreprocessor')
    cfg = Config.fromfile(
        toy_config(tmp_path, segmentor=foreign['segmentor'], data_preprocessor=pre)
    )
    cfg.load_from = conv
    check_load_from(cfg)  # the config builds the recorded network: no error
    runner = Runner.from_cfg(cfg)
    runner.load_or_resume()  # mmengine's loader
    got = runner.model.student.state_dict()
    assert torch.equal(got['net.encoder.layer2.0.conv1.weight'], ref.layer2[0].conv1.weight)
    assert torch.equal(got['heads.aux.branches.1.bias'], ref.layer5.conv2d_list[1].bias)
    # A config that builds smp's torchvision ResNet and RGB input: named, with the fix.
    cfg.model.segmentor = dict(foreign['segmentor'], encoder_style='torchvision')
    cfg.model.data_preprocessor = dict(type='SegDataPreprocessor')
    with pytest.raises(ForeignCheckpointError) as err:
        check_load_from(cfg)
    msg = str(err.value)
    assert "model.segmentor.encoder_style='caffe'" in msg
    assert "model.data_preprocessor.channel_order='bgr'" in msg
