"""Export round trips (ONNX via onnxruntime, TorchScript, safetensors + sidecar) and bad input."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from mmengine.config import Config

from uda.export import FORMATS, ExportVerificationError, export, load_safetensors, read_sidecar
from uda.registry import MODELS

pytest.importorskip('onnx', reason='ONNX export needs onnx: pip install onnx')
pytest.importorskip('onnxruntime', reason='ONNX checks need onnxruntime: pip install onnxruntime')


def toy_cfg(num_classes: int = 19, divisor: int = 8) -> Config:
    return Config(
        dict(
            model=dict(
                type='Adapter',
                segmentor=dict(type='ToySegmentor', num_classes=num_classes),
                data_preprocessor=dict(type='SegDataPreprocessor', size_divisor=divisor),
                terms=dict(src=dict(type='SourceCE')),
            ),
            test_evaluator=dict(type='IoUMetric', protocol='cityscapes19'),
        )
    )


def write_checkpoint(path: str, cfg: Config, teacher: bool = False) -> dict:
    """An mmengine-style checkpoint; with ``teacher`` also perturbed ``teacher.net.*`` weights
    (the MomentumTeacher's layout)."""
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    state = dict(model.state_dict())
    with torch.no_grad():  # non-trivial BN statistics, so eval-mode BN matters in the check
        state['student.bn.running_mean'] = torch.randn(4)
        state['student.bn.running_var'] = torch.rand(4) + 0.5
    if teacher:
        state.update(
            {
                f'teacher.net.{k[len("student.") :]}': v + 0.5 * torch.randn_like(v.float())
                if v.is_floating_point()
                else v
                for k, v in state.items()
                if k.startswith('student.')
            }
        )
    torch.save(dict(state_dict=state, meta={}), path)
    return state


def reference_net(state: dict, which: str = 'student') -> torch.nn.Module:
    net = MODELS.build(dict(type='ToySegmentor', num_classes=19))
    prefix = 'teacher.net.' if which == 'teacher' else f'{which}.'
    net.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
    return net.eval()


@pytest.mark.parametrize('fmt', FORMATS)
def test_round_trip(tmp_path, fmt: str) -> None:
    cfg = toy_cfg()
    state = write_checkpoint(str(tmp_path / 'ckpt.pth'), cfg)
    out = str(tmp_path / 'sub' / f'model.{fmt}')
    meta = export(cfg, str(tmp_path / 'ckpt.pth'), fmt, out)
    assert os.path.isfile(out) and meta['format'] == fmt
    side = read_sidecar(out)
    assert side['classes'][0] == 'road' and len(side['palette']) == 19
    assert side['stride'] == 8 and side['normalization']['mean'][0] == pytest.approx(123.675)
    assert side['architecture']['type'] == 'ToySegmentor'
    sizes = side['verification']['sizes']
    assert len(sizes) == 2 and sizes[0]['shape'] != sizes[1]['shape']
    # Load independently of the export code's own check, at a third, odd batch / size.
    x = torch.randn(3, 3, 40, 16)
    ref = reference_net(state)(x).detach().numpy()
    if fmt == 'onnx':
        import onnxruntime as ort

        sess = ort.InferenceSession(out, providers=['CPUExecutionProvider'])
        got = sess.run(None, {'input': x.numpy()})[0]
        np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)
    elif fmt == 'torchscript':
        got = torch.jit.load(out)(x).detach().numpy()
        np.testing.assert_allclose(got, ref, atol=1e-5, rtol=1e-5)
    else:
        got = load_safetensors(out)(x).detach().numpy()
        np.testing.assert_array_equal(got, ref)


def test_export_teacher(tmp_path) -> None:
    cfg = toy_cfg()
    state = write_checkpoint(str(tmp_path / 'ckpt.pth'), cfg, teacher=True)
    out = str(tmp_path / 'teacher.safetensors')
    export(cfg, str(tmp_path / 'ckpt.pth'), 'safetensors', out, which='teacher')
    x = torch.randn(1, 3, 16, 16)
    got = load_safetensors(out)(x)
    torch.testing.assert_close(got, reference_net(state, 'teacher')(x), rtol=0, atol=0)
    assert not torch.allclose(got, reference_net(state, 'student')(x))


def test_failed_verification_removes_files(tmp_path, monkeypatch) -> None:
    import uda.export.onnx as onnx_mod

    real = onnx_mod.onnx_runner

    def broken(path, threads=0):
        run = real(path, threads)
        return lambda x: run(x) + 1e-2  # a small systematic error must be caught

    monkeypatch.setattr(onnx_mod, 'onnx_runner', broken)
    cfg = toy_cfg()
    write_checkpoint(str(tmp_path / 'ckpt.pth'), cfg)
    out = str(tmp_path / 'model.onnx')
    with pytest.raises(ExportVerificationError, match='differ from PyTorch'):
        export(cfg, str(tmp_path / 'ckpt.pth'), 'onnx', out)
    assert not os.path.exists(out) and not os.path.exists(out + '.json')


def test_bad_input(tmp_path) -> None:
    cfg = toy_cfg()
    ckpt = str(tmp_path / 'ckpt.pth')
    write_checkpoint(ckpt, cfg)
    with pytest.raises(ValueError, match='Unsupported export format'):
        export(cfg, ckpt, 'tflite', str(tmp_path / 'm.tflite'))
    with pytest.raises(IsADirectoryError, match='is a directory'):
        export(cfg, ckpt, 'onnx', str(tmp_path))
    with pytest.raises(ValueError, match='another class count or architecture'):
        export(toy_cfg(num_classes=11), ckpt, 'onnx', str(tmp_path / 'm.onnx'))
    with pytest.raises(KeyError, match="no 'teacher' weights"):
        export(cfg, ckpt, 'onnx', str(tmp_path / 'm.onnx'), which='teacher')
    arch = Config(
        dict(
            model=dict(
                segmentor=dict(
                    type='SMPSegmentor', arch='FPN', encoder_name='resnet18', num_classes=19
                )
            )
        )
    )
    with pytest.raises(ValueError, match='does not fit'):
        export(arch, ckpt, 'onnx', str(tmp_path / 'm.onnx'))
    with pytest.raises(FileNotFoundError):
        read_sidecar(str(tmp_path / 'nothing.onnx'))


def test_sidecar_without_protocol_gets_generic_names(tmp_path) -> None:
    cfg = toy_cfg(num_classes=5)
    write_checkpoint(str(tmp_path / 'c.pth'), cfg)
    export(cfg, str(tmp_path / 'c.pth'), 'torchscript', str(tmp_path / 'm.pt'))
    with open(tmp_path / 'm.pt.json') as f:
        meta = json.load(f)
    assert meta['classes'] == [f'class_{i}' for i in range(5)] and meta['protocol'] is None
    assert len({tuple(c) for c in meta['palette']}) == 5
