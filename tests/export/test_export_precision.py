"""fp16 and int8 ONNX exports: verified against PyTorch, smaller, calibrated on target images."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from mmengine.config import Config

from tests.export.test_export import reference_net, toy_cfg, write_checkpoint
from uda.export import ExportVerificationError, export, read_sidecar

onnx = pytest.importorskip('onnx', reason='ONNX export needs onnx: pip install onnx')
ort = pytest.importorskip('onnxruntime', reason='ONNX checks need onnxruntime')


def _with_target(cfg: Config) -> Config:
    target = dict(
        type='SyntheticDataset',
        style='target',
        num_samples=6,
        seed=0,
        size=(32, 48),
        with_label=False,
    )
    cfg.train_dataloader = dict(
        dataset=dict(type='MultiBranchDataset', branches=dict(source=target, target=target))
    )
    return cfg


def _run(path: str, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    return session.run(None, {'input': x})[0]


def test_fp16_export_is_verified_and_half_the_size(tmp_path):
    cfg = toy_cfg()
    state = write_checkpoint(str(tmp_path / 'ckpt.pth'), cfg)
    fp32, fp16 = str(tmp_path / 'fp32.onnx'), str(tmp_path / 'fp16.onnx')
    export(cfg, str(tmp_path / 'ckpt.pth'), 'onnx', fp32)
    meta = export(cfg, str(tmp_path / 'ckpt.pth'), 'onnx', fp16, precision='fp16')
    assert meta['precision'] == 'fp16' and read_sidecar(fp16)['precision'] == 'fp16'
    weights = {i.name: i.data_type for i in onnx.load(fp16).graph.initializer}
    assert onnx.TensorProto.FLOAT16 in weights.values()

    def weight_bytes(path):
        return sum(len(i.raw_data) for i in onnx.load(path).graph.initializer)

    assert weight_bytes(fp16) == pytest.approx(weight_bytes(fp32) / 2, rel=0.05)
    x = torch.randn(1, 3, 40, 24)
    out = _run(fp16, x.numpy())  # float32 in, float32 out
    assert out.dtype == np.float32
    ref = reference_net(state)(x).detach().numpy()
    assert np.allclose(out, ref, atol=2e-2, rtol=2e-2)
    assert meta['verification']['atol'] == pytest.approx(2e-2)


def test_int8_export_is_calibrated_on_target_images_and_verified(tmp_path):
    cfg = _with_target(toy_cfg())
    write_checkpoint(str(tmp_path / 'ckpt.pth'), cfg)
    out = str(tmp_path / 'int8.onnx')
    meta = export(cfg, str(tmp_path / 'ckpt.pth'), 'onnx', out, precision='int8', calibration=3)
    assert meta['calibration'] == dict(images=3, set='train_dataloader.dataset.branches.target')
    ops = {n.op_type for n in onnx.load(out).graph.node}
    assert {'QuantizeLinear', 'DequantizeLinear'} <= ops
    records = read_sidecar(out)['verification']['sizes']
    # Two random-input shape checks, then the two held-out target images.
    assert len(records) == 4 and all(r['rel_l2_error'] <= 0.25 for r in records[2:])


def test_int8_verification_failure_removes_the_files(tmp_path, monkeypatch):
    import uda.export.api as api

    cfg = _with_target(toy_cfg())
    write_checkpoint(str(tmp_path / 'ckpt.pth'), cfg)
    out = str(tmp_path / 'int8.onnx')
    monkeypatch.setattr(api, 'INT8_MAX_REL_ERROR', 0.0)
    with pytest.raises(ExportVerificationError, match='relative L2 error'):
        export(cfg, str(tmp_path / 'ckpt.pth'), 'onnx', out, precision='int8', calibration=2)
    assert not os.path.exists(out) and not os.path.exists(out + '.json')


def test_precision_options_reject_bad_input(tmp_path):
    cfg = toy_cfg()
    write_checkpoint(str(tmp_path / 'ckpt.pth'), cfg)
    ckpt, out = str(tmp_path / 'ckpt.pth'), str(tmp_path / 'm.onnx')
    with pytest.raises(ValueError, match='ONNX export option'):
        export(cfg, ckpt, 'torchscript', str(tmp_path / 'm.pt'), precision='fp16')
    with pytest.raises(ValueError, match='precision'):
        export(cfg, ckpt, 'onnx', out, precision='int4')
    with pytest.raises(KeyError, match='target images'):
        export(cfg, ckpt, 'onnx', out, precision='int8')  # no target set in the config
    assert not os.path.exists(out + '.fp32.tmp')
