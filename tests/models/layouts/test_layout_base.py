"""The layout registry, coverage check and in-memory conversion, on a toy layout."""

from __future__ import annotations

from typing import Any, Iterator

import pytest
import torch

from uda.models.layouts import (
    CheckpointLayout,
    ConvertedCheckpoint,
    ForeignCheckpointError,
    Preprocessing,
    apply_foreign_config,
    as_uda_checkpoint,
    detect_layout,
    foreign_meta,
    get_layout,
    load_foreign_checkpoint,
)
from uda.models.layouts.base import rename, tensor_items, with_prefix
from uda.registry import CHECKPOINT_LAYOUTS, MODELS

TOY = dict(type='ToySegmentor', num_classes=3, channels=4)


class ToyFileLayout(CheckpointLayout):
    """A made-up layout: ``{'toy_model': {'body.conv.*', 'body.bn.*', 'body.cls.*'}}``."""

    repository = 'example/toy'
    source_file = 'train.py:1'

    def matches(self, ckpt: Any) -> bool:
        return isinstance(ckpt, dict) and 'toy_model' in ckpt

    def convert(self, ckpt: Any) -> ConvertedCheckpoint:
        state, unmapped = rename(
            with_prefix(tensor_items(ckpt['toy_model']), 'body.'),
            [(r'^cls\.', 'classifier.'), (r'^(conv|bn)\.', r'\1.')],
        )
        return ConvertedCheckpoint(
            layout=self.name,
            state_dict=state,
            segmentor=dict(TOY),
            preprocessing=Preprocessing('bgr', 255.0, (104.0, 117.0, 123.0)),
            meta=dict(epoch=ckpt.get('epoch')),
            unmapped=unmapped,
        )


@pytest.fixture
def toy_layout() -> Iterator[None]:
    CHECKPOINT_LAYOUTS.register_module(module=ToyFileLayout, force=True)
    yield
    CHECKPOINT_LAYOUTS._module_dict.pop('ToyFileLayout')


def toy_file(extra: dict | None = None, drop: str | None = None) -> dict:
    net = MODELS.build(dict(TOY))
    state = {f'body.{k.replace("classifier.", "cls.")}': v for k, v in net.state_dict().items()}
    state.update(extra or {})
    if drop:
        state.pop(drop)
    return dict(toy_model=state, epoch=7, opt={'lr': 0.1})


def test_full_coverage_converts_and_reports(toy_layout: None, tmp_path: Any) -> None:
    path = tmp_path / 'toy.pth'
    torch.save(toy_file(), path)
    conv, line = load_foreign_checkpoint(path)
    assert conv.layout == 'ToyFileLayout'
    assert 'ToyFileLayout' in line and '0 missing, 0 unexpected' in line
    net = MODELS.build(dict(TOY))
    net.load_state_dict(conv.state_dict, strict=True)
    # The reference preprocessing in SegDataPreprocessor units.
    assert conv.data_preprocessor == dict(
        mean=[104.0, 117.0, 123.0], std=[1.0, 1.0, 1.0], channel_order='bgr'
    )
    assert (
        Preprocessing('rgb', 1.0, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)).data_preprocessor()['std']
        == [63.75] * 3
    )


def test_below_coverage_is_a_hard_error_naming_layout_and_keys(
    toy_layout: None, tmp_path: Any
) -> None:
    path = tmp_path / 'toy.pth'
    torch.save(toy_file(drop='body.bn.weight'), path)
    with pytest.raises(ForeignCheckpointError, match=r'ToyFileLayout.*\n.*bn\.weight'):
        load_foreign_checkpoint(path)
    torch.save(toy_file(extra={'body.extra.weight': torch.zeros(2)}), path)
    with pytest.raises(ForeignCheckpointError, match=r'no place.*extra\.weight'):
        load_foreign_checkpoint(path)
    bad = toy_file()
    bad['toy_model']['body.cls.weight'] = torch.zeros(5, 4, 1, 1)
    torch.save(bad, path)
    with pytest.raises(ForeignCheckpointError, match='shape mismatches'):
        load_foreign_checkpoint(path)


def test_unknown_and_unmatched_layouts(toy_layout: None) -> None:
    with pytest.raises(ForeignCheckpointError, match='Unknown checkpoint layout.*ToyFileLayout'):
        get_layout('nolayout')
    assert get_layout('toyfilelayout').name == 'ToyFileLayout'  # any case
    with pytest.raises(ForeignCheckpointError, match='no checkpoint layout matches'):
        detect_layout({'something': {}}, 'x.pth')


def test_uda_checkpoint_round_trip_and_config(toy_layout: None, tmp_path: Any) -> None:
    path = tmp_path / 'toy.pth'
    torch.save(toy_file(), path)
    ckpt = torch.load(path, weights_only=True)
    out = as_uda_checkpoint(ckpt, str(path))
    assert set(out['state_dict']) == {f'student.{k}' for k in MODELS.build(dict(TOY)).state_dict()}
    # uda checkpoints pass through untouched; the same file is converted once.
    assert as_uda_checkpoint(out, 'x.pth') is out
    assert as_uda_checkpoint(ckpt, str(path)) is out
    meta = foreign_meta(out)
    assert meta is not None and meta['layout'] == 'ToyFileLayout' and meta['meta']['epoch'] == 7
    torch.save(out, tmp_path / 'uda.pth')  # weights-only loadable: plain meta
    assert foreign_meta(torch.load(tmp_path / 'uda.pth', weights_only=True)) == meta
    cfg = dict(
        model=dict(
            segmentor=dict(type='SMPSegmentor'),
            data_preprocessor=dict(type='SegDataPreprocessor', size_divisor=8),
        )
    )
    line = apply_foreign_config(cfg, meta)
    assert cfg['model']['segmentor'] == TOY and 'BGR 0-255' in line
    assert cfg['model']['data_preprocessor'] == dict(
        type='SegDataPreprocessor',
        size_divisor=8,
        mean=[104.0, 117.0, 123.0],
        std=[1.0, 1.0, 1.0],
        channel_order='bgr',
    )
