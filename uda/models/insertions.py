"""Modules inserted into a segmentor at named places of its forward pass: the one seam for
adapters, prompt tokens, gates and output changes, instead of one ``SMPSegmentor`` flag each.

``SMPSegmentor(insertions=dict(name=dict(type=..., ...), ...))`` builds each registered
:class:`SegmentorInsertion` (``MODELS``), calls its :meth:`~SegmentorInsertion.attach` once
the network is built, and runs it at three places, in config order:

- ``encoder(features)``: after the encoder, on its list of stage maps (adapters on stage
  outputs); modules that must act *inside* the encoder (adapters or prompt tokens in ViT blocks)
  register forward hooks on ``segmentor.net.encoder`` in ``attach``;
- ``decoder(decoder, features)``: between the decoder and the segmentation head (single-stage
  CAM's stochastic gate);
- ``logits(logits)``: after the segmentation head (single-stage CAM's constant background).

Insertions are submodules of the segmentor (``insertions.<name>.*`` in checkpoints), so the
teacher copies them, the optimiser trains them, ``freeze`` / ``train_only`` patterns reach them,
and export traces them.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from uda.models.pamr import GlobalCueInjection, StochasticGate
from uda.registry import MODELS


class SegmentorInsertion(nn.Module):
    """A module a segmentor runs at fixed places of its forward pass (identity by default).

    Attributes:
        removed_classes: Output classes the segmentation head does not predict because this
            insertion supplies them (:class:`ConstantLogit`: 1).
    """

    removed_classes: int = 0

    def attach(self, segmentor: Any) -> None:
        """Called once after the network is built: read channel counts, build layers, or
        register forward hooks inside ``segmentor.net.encoder``."""

    def encoder(self, features: list[Tensor]) -> list[Tensor]:
        """The encoder's stage maps, [B, C_i, H_i, W_i] each, after the encoder."""
        return features

    def decoder(self, decoder: Tensor, features: list[Tensor]) -> Tensor:
        """The decoder output [B, D, h, w] before the segmentation head."""
        return decoder

    def logits(self, logits: Tensor) -> Tensor:
        """The segmentation head's logits [B, C, h, w]."""
        return logits


@MODELS.register_module()
class ConstantLogit(SegmentorInsertion):
    """Class ``index`` gets the constant logit ``value`` instead of a learnt one; the head
    predicts the other ``num_classes - 1``. Single-stage CAM's background
    (visinf/1-stage-wseg ``models/stage_net.py``: ``bg = torch.ones_like(x[:, :1])``). Part of
    the forward pass, so evaluation and export see it.

    Args:
        index: Class id of the constant logit.
        value: The logit.
    """

    removed_classes = 1

    def __init__(self, index: int = 0, value: float = 1.0) -> None:
        super().__init__()
        self.index, self.value = int(index), float(value)

    def attach(self, segmentor: Any) -> None:
        if not 0 <= self.index < segmentor.num_classes or segmentor.num_classes < 2:
            raise ValueError(
                f'segmentor ConstantLogit(index={self.index}): give index=<class id in '
                f'0..{segmentor.num_classes - 1}> with num_classes >= 2.'
            )

    def logits(self, logits: Tensor) -> Tensor:
        # zeros_like + value (not torch.full): the shape follows the input in ONNX exports.
        const = torch.zeros_like(logits[:, :1]) + self.value
        return torch.cat([logits[:, : self.index], const, logits[:, self.index :]], 1)


@MODELS.register_module()
class ShallowGate(SegmentorInsertion):
    """Single-stage CAM's stochastic gate with global cue injection (visinf/1-stage-wseg
    ``models/stage_net.py``, ``models/mods/sg.py``, ``models/mods/gci.py``; ``SG_PSI`` = 0.3):
    encoder stage ``in_index``, with global cues of the decoder output
    (:class:`~uda.models.pamr.GlobalCueInjection`, ``channels`` hidden), is mixed into the
    decoder output by a :class:`~uda.models.pamr.StochasticGate` before the segmentation head
    (random in training, ``(1 - psi) * deep + psi * shallow`` in eval mode).

    Args:
        psi: Gate rate.
        in_index: Encoder stage of the shallow features.
        channels: Hidden channels of the global cue injection.
    """

    def __init__(self, psi: float = 0.3, in_index: int = 2, channels: int = 256) -> None:
        super().__init__()
        self.psi, self.in_index, self.channels = float(psi), int(in_index), int(channels)
        self.gate = StochasticGate(self.psi)
        self.gci: nn.Module = nn.Identity()  # built in attach (channel counts)
        self.align_corners = False

    def attach(self, segmentor: Any) -> None:
        head = segmentor.net.segmentation_head[0]
        if not isinstance(head, nn.Conv2d):
            raise ValueError(
                'segmentor ShallowGate needs a convolutional segmentation head; '
                f'{segmentor.arch} has {type(head).__name__}.'
            )
        shallow = segmentor.encoder_channels[self.in_index]
        self.gci = GlobalCueInjection(shallow, head.in_channels, self.channels, head.in_channels)
        self.align_corners = segmentor.align_corners

    def decoder(self, decoder: Tensor, features: list[Tensor]) -> Tensor:
        shallow = features[self.in_index]
        if shallow.shape[-2:] != decoder.shape[-2:]:
            shallow = F.interpolate(
                shallow, decoder.shape[-2:], mode='bilinear', align_corners=self.align_corners
            )
        return self.gate(decoder, self.gci(shallow, decoder))


# The SMPSegmentor arguments these insertions replace: old key -> (insertion name, type).
LEGACY_ARGUMENTS = {
    'stochastic_gate': ('gate', 'ShallowGate'),
    'constant_logit': ('background', 'ConstantLogit'),
}
