"""DAFormer and UniMatch's DeepLab-v3+ export to ONNX with dynamic sizes (checked against
PyTorch by the exporter at two input sizes)."""

from __future__ import annotations

import pytest
import torch
from mmengine.config import Config

from uda.export import export
from uda.registry import MODELS

pytest.importorskip('onnx', reason='ONNX export needs onnx: pip install onnx')
pytest.importorskip('onnxruntime', reason='ONNX checks need onnxruntime: pip install onnxruntime')

SEGMENTORS = {
    'DAFormer': dict(encoder_name='mit_b0'),
    'UniMatchDeepLabV3Plus': dict(
        encoder_name='tu-resnet101s', encoder_kwargs=dict(layers=(1, 1, 1, 2)), align_corners=True
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize('arch', sorted(SEGMENTORS))
def test_onnx_export_verifies(tmp_path, arch: str) -> None:
    segmentor = dict(type='SMPSegmentor', arch=arch, num_classes=19, **SEGMENTORS[arch])
    cfg = Config(
        dict(
            model=dict(
                type='Adapter',
                segmentor=segmentor,
                data_preprocessor=dict(type='SegDataPreprocessor', size_divisor=32),
                terms=dict(src=dict(type='SourceCE')),
            ),
            test_evaluator=dict(type='IoUMetric', protocol='cityscapes19'),
        )
    )
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    torch.save(dict(state_dict=model.state_dict(), meta={}), tmp_path / 'ckpt.pth')
    meta = export(cfg, str(tmp_path / 'ckpt.pth'), 'onnx', str(tmp_path / 'model.onnx'))
    sizes = meta['verification']['sizes']
    assert len(sizes) == 2 and all(s['max_abs_diff'] < 1e-4 for s in sizes)
