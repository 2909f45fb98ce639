"""The SAC warm-start leaf builds the network of da-sac's ABN snapshot (checked by
tools/train.py before training), and the torchvision-style leaf is refused with the fix."""

from __future__ import annotations

import json
import os.path as osp
from typing import Any

import pytest
import torch
from mmengine.config import Config

from uda.models.layouts import ForeignCheckpointError, base, check_load_from, convert_checkpoint

ROOT = osp.join(osp.dirname(__file__), '..', '..', '..')
DASAC_LEAF = 'configs/sac/sac-dasac-abn_deeplabv2-resnet101_40k_gta2cityscapes-512x512.py'
SAC_LEAF = 'configs/sac/sac_deeplabv2-resnet101_40k_gta2cityscapes-512x512.py'


def test_sac_warm_start_leaf_fits_the_dasac_snapshot(monkeypatch: Any) -> None:
    cfg = Config.fromfile(osp.join(ROOT, DASAC_LEAF))
    assert cfg.load_from.endswith('da-sac/resnet101_gta/baseline_abn_e040.pth')
    # The published file's keys and shapes (data/), converted in memory: 1.3 GB not written.
    with open(osp.join(osp.dirname(__file__), 'data', 'dasac_baseline_abn_r101.json')) as f:
        state = {k: torch.empty(s) for k, s in json.load(f).items()}
    conv, _ = convert_checkpoint(dict(model=state, epoch=40), 'auto', cfg.load_from)
    monkeypatch.setattr(base, 'read_checkpoint', lambda path, layout='auto': conv.uda_checkpoint())
    check_load_from(cfg)  # the leaf builds da-sac's network and input: no error
    plain = Config.fromfile(osp.join(ROOT, SAC_LEAF))
    plain.load_from = cfg.load_from
    with pytest.raises(ForeignCheckpointError, match="encoder_style='caffe'"):
        check_load_from(plain)
