"""A segmentor trained by single-stage CAM (constant background logit + stochastic gate)
exports like any segmentor: the gate in its test form, the constant logit in the graph."""

import numpy as np
import pytest
import torch
from mmengine.config import Config

from uda.export import export
from uda.registry import MODELS

pytest.importorskip('onnxruntime', reason='ONNX checks need onnxruntime: pip install onnxruntime')


def test_cam_segmentor_exports_to_onnx_and_torchscript(tmp_path) -> None:
    segmentor = dict(
        type='SMPSegmentor',
        arch='Unet',
        encoder_name='resnet18',
        num_classes=21,
        decoder_channels=(32, 16, 16, 16, 8),
        constant_logit=dict(index=0, value=1.0),
        stochastic_gate=dict(psi=0.3, in_index=2, channels=8),
    )
    cfg = Config(
        dict(
            model=dict(
                type='Adapter',
                segmentor=segmentor,
                data_preprocessor=dict(type='SegDataPreprocessor', size_divisor=32),
                terms=dict(cam=dict(type='SingleStageCAM', branch='weak', background=0)),
            ),
            test_evaluator=dict(type='IoUMetric', protocol='voc21'),
        )
    )
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    torch.save(dict(state_dict=model.state_dict(), meta={}), tmp_path / 'ckpt.pth')
    net = model.student.eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        ref = net(x).numpy()
    assert np.all(ref[:, 0] == 1.0)
    import onnxruntime as ort

    out = str(tmp_path / 'm.onnx')
    export(cfg, str(tmp_path / 'ckpt.pth'), 'onnx', out)
    got = ort.InferenceSession(out, providers=['CPUExecutionProvider']).run(
        None, {'input': x.numpy()}
    )[0]
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)
    ts = str(tmp_path / 'm.pt')
    export(cfg, str(tmp_path / 'ckpt.pth'), 'torchscript', ts)
    np.testing.assert_allclose(torch.jit.load(ts)(x).detach().numpy(), ref, atol=1e-5, rtol=1e-5)
