"""The segmentation network: an smp model, plus the extra outputs adaptation terms need."""
from __future__ import annotations

import inspect
from typing import Any, Optional, Union

import segmentation_models_pytorch as smp
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from uda.registry import MODELS


@MODELS.register_module()
class SMPSegmentor(nn.Module):
    """Wrap ``smp.create_model`` and expose encoder features and an auxiliary head.

    ``forward(x)`` returns logits [B, C, H, W] at input size. ``forward(x, return_features=True,
    return_aux=True)`` returns a dict with ``logits``, ``features`` (the encoder's list of
    [B, C_i, H/2^i, W/2^i] maps), ``decoder`` (the decoder output) and ``aux_logits`` (a small
    head on encoder stage ``aux_in_index``, resized to input size), which adversarial and
    multi-level terms consume.

    Args:
        arch: smp architecture name (``Unet``, ``FPN``, ``DeepLabV3Plus`` ...).
        encoder_name: smp / timm encoder name.
        encoder_weights: Pretrained weights name, or None (no download; tests use None).
        num_classes: Output classes.
        in_channels: Input channels.
        aux_head: If given, ``dict(in_index=-2, channels=256)`` builds the auxiliary head on
            that encoder stage (the penultimate one by default).
        **smp_kwargs: Passed to ``smp.create_model`` (e.g. ``decoder_channels``).
    """

    def __init__(self, arch: str = 'Unet', encoder_name: str = 'resnet18',
                 encoder_weights: Optional[str] = None, num_classes: int = 19,
                 in_channels: int = 3, aux_head: Optional[dict] = None, **smp_kwargs: Any) -> None:
        super().__init__()
        model_class = smp.MODEL_ARCHITECTURES_MAPPING.get(arch.lower())
        if model_class is None:
            raise ValueError(f'SMPSegmentor: unknown arch {arch!r}; smp offers '
                             f'{sorted(smp.MODEL_ARCHITECTURES_MAPPING)}.')
        # smp models swallow unknown keyword arguments (**kwargs); a typo in a config would be
        # ignored silently, so check them against the architecture's signature.
        known = set(inspect.signature(model_class.__init__).parameters) - {'self', 'kwargs'}
        unknown = sorted(set(smp_kwargs) - known)
        if unknown:
            raise ValueError(f'SMPSegmentor(arch={arch!r}): unknown argument(s) {unknown}. '
                             f'{model_class.__name__} accepts {sorted(known)}.')
        try:
            self.net = smp.create_model(arch, encoder_name=encoder_name,
                                        encoder_weights=encoder_weights, in_channels=in_channels,
                                        classes=num_classes, **smp_kwargs)
        except (KeyError, ValueError, TypeError) as err:
            raise ValueError(f'SMPSegmentor(arch={arch!r}, encoder_name={encoder_name!r}): {err}. '
                             'See segmentation_models_pytorch docs for valid arch/encoder names '
                             'and arguments.') from err
        self.num_classes = num_classes
        self.arch, self.encoder_name = arch, encoder_name
        self.aux_in_index: Optional[int] = None
        self.aux_head: Optional[nn.Module] = None
        if aux_head is not None:
            self.aux_in_index = int(aux_head.get('in_index', -2))
            in_ch = self.net.encoder.out_channels[self.aux_in_index]
            ch = int(aux_head.get('channels', 256))
            self.aux_head = nn.Sequential(
                nn.Conv2d(in_ch, ch, 3, padding=1, bias=False), nn.BatchNorm2d(ch),
                nn.ReLU(inplace=True), nn.Conv2d(ch, num_classes, 1))

    @property
    def encoder_channels(self) -> list[int]:
        return list(self.net.encoder.out_channels)

    def forward(self, x: Tensor, return_features: bool = False,
                return_aux: bool = False) -> Union[Tensor, dict[str, Any]]:
        if return_aux and self.aux_head is None:
            raise ValueError('return_aux=True but the segmentor has no aux_head; set '
                             'segmentor.aux_head=dict(in_index=-2, channels=256) in the config.')
        features = self.net.encoder(x)
        decoder = self.net.decoder(features)
        logits = self.net.segmentation_head(decoder)
        if logits.shape[-2:] != x.shape[-2:]:
            logits = F.interpolate(logits, x.shape[-2:], mode='bilinear', align_corners=False)
        if not (return_features or return_aux):
            return logits
        out: dict[str, Any] = dict(logits=logits)
        if return_features:
            out['features'] = features
            out['decoder'] = decoder
        if return_aux:
            aux = self.aux_head(features[self.aux_in_index])
            out['aux_logits'] = F.interpolate(aux, x.shape[-2:], mode='bilinear',
                                              align_corners=False)
        return out
