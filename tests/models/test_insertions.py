"""The segmentor's insertion seam: registered modules at named places of the forward pass, and
CAM's old segmentor flags translated onto it."""

import pytest
import torch
from torch import Tensor

from uda.models.insertions import SegmentorInsertion
from uda.models.segmentor import SMPSegmentor
from uda.registry import MODELS

SMALL = dict(arch='Unet', encoder_name='resnet18', decoder_channels=(32, 16, 16, 16, 8))
CAM = dict(
    background=dict(type='ConstantLogit', index=0, value=1.0),
    gate=dict(type='ShallowGate', psi=0.3, in_index=2, channels=8),
)


@MODELS.register_module(force=True)
class StageAdapter(SegmentorInsertion):
    """A residual 1x1 adapter on the deepest encoder stage, zero-initialised."""

    def attach(self, segmentor):
        ch = segmentor.encoder_channels[-1]
        self.proj = torch.nn.Conv2d(ch, ch, 1)
        torch.nn.init.zeros_(self.proj.weight)
        torch.nn.init.zeros_(self.proj.bias)
        self.calls = 0

    def encoder(self, features: list[Tensor]) -> list[Tensor]:
        self.calls += 1
        return [*features[:-1], features[-1] + self.proj(features[-1])]


def test_an_encoder_insertion_runs_on_the_stages_and_trains():
    torch.manual_seed(0)
    plain = SMPSegmentor(num_classes=3, **SMALL)
    torch.manual_seed(0)
    seg = SMPSegmentor(num_classes=3, insertions=dict(adapter=dict(type='StageAdapter')), **SMALL)
    x = torch.randn(1, 3, 64, 64)
    plain.eval(), seg.eval()
    # Zero-initialised: the same network as without it, until it trains.
    assert torch.allclose(seg(x), plain(x), atol=1e-6)
    assert seg.insertions.adapter.calls == 1
    assert 'insertions.adapter.proj.weight' in dict(seg.named_parameters())
    seg.train()
    seg(x).sum().backward()
    assert seg.insertions.adapter.proj.weight.grad is not None
    assert seg.insertions.adapter.proj.weight.grad.abs().sum() > 0


def test_a_module_that_is_not_an_insertion_is_refused():
    with pytest.raises(TypeError, match=r"insertions\['x'\] is a FCDiscriminator"):
        SMPSegmentor(
            num_classes=3, insertions=dict(x=dict(type='FCDiscriminator', in_channels=3)), **SMALL
        )


def test_cam_flags_are_translated_with_one_warning_each_and_load_old_checkpoints():
    torch.manual_seed(0)
    new = SMPSegmentor(num_classes=4, insertions=CAM, **SMALL)
    with pytest.warns(DeprecationWarning) as caught:
        torch.manual_seed(0)
        old = SMPSegmentor(
            num_classes=4,
            constant_logit=dict(index=0, value=1.0),
            stochastic_gate=dict(psi=0.3, in_index=2, channels=8),
            **SMALL,
        )
    messages = [str(w.message) for w in caught if w.category is DeprecationWarning]
    assert any('segmentor.constant_logit is deprecated' in m for m in messages)
    assert any('segmentor.stochastic_gate is deprecated' in m for m in messages)
    assert list(old.state_dict()) == list(new.state_dict())
    # Parameter order as before the seam (the gate's layers after the heads): optimiser states
    # of older checkpoints still line up.
    names = [n for n, _ in new.named_parameters()]
    assert names[-1].startswith('insertions.gate.gci.')
    # A checkpoint from before the seam kept the gate at gci.*: it loads strictly.
    legacy = {
        (k.replace('insertions.gate.gci.', 'gci.') if k.startswith('insertions.gate.') else k): v
        for k, v in new.state_dict().items()
    }
    assert any(k.startswith('gci.') for k in legacy)
    old.load_state_dict(legacy, strict=True)
    x = torch.randn(2, 3, 64, 64)
    old.eval(), new.eval()
    assert torch.equal(old(x), new(x))
    with pytest.raises(ValueError, match='both given'):
        with pytest.warns(DeprecationWarning):
            SMPSegmentor(
                num_classes=4,
                constant_logit=dict(index=0),
                insertions=dict(background=dict(type='ConstantLogit')),
                **SMALL,
            )
