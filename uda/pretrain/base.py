"""Self-supervised pretraining of the segmentor's encoder: the parts every method shares.

A pretrainer is an mmengine ``BaseModel`` trained by the same Runner, data pipeline and
momentum-teacher hook as the adaptation methods: the dataset gives two (or more) named views
of each unlabelled image (geometric crops in the albumentations pipeline of a
:class:`uda.data.MultiBranchDataset` branch with ``views``), the data preprocessor normalises
them, and :meth:`SelfSupervisedPretrainer.view` adds the photometric noise on the device
(:class:`uda.augment.PhotometricAugment`, per-image parameters). ``train_step`` returns the
losses through the optim wrapper; :class:`uda.engine.EMATeacherHook` updates the momentum
encoder; :class:`uda.engine.hooks.EncoderExportHook` writes ``encoder.pth``.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper
from torch import Tensor

from uda.augment.photometric import build_photometric, photometric_view
from uda.registry import MODELS

# Name of the file layout of ``encoder.pth``: ``{'state_dict': <encoder keys, bare>, 'meta'}``.
ENCODER_LAYOUT = 'uda'


def embedding_std(z: Tensor) -> Tensor:
    """Collapse check: per-dimension std of the L2-normalised embeddings [B, D], times sqrt(D).

    SimSiam (Chen & He, CVPR 2021, Sec. 4.1) monitors the std of l2-normalised outputs: about
    ``1 / sqrt(D)`` for well-spread embeddings, 0 when every image maps to one point. Scaled
    by ``sqrt(D)`` the healthy value is ~1 and collapse is ~0, whatever the dimension.
    """
    z = F.normalize(z.detach().float().flatten(1), dim=1)
    if z.shape[0] < 2:
        return z.new_zeros(())
    return z.std(dim=0).mean() * math.sqrt(z.shape[1])


class EncoderWithHead(nn.Module):
    """The segmentor's encoder followed by a projection head on its globally pooled last stage.

    ``forward(x)`` returns the head's output [B, D] for images [B, 3, H, W]; ``features(x)``
    returns the encoder's list of stage maps (``smp`` encoders: [B, C_i, H/2^i, W/2^i]).
    """

    def __init__(self, encoder: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def features(self, x: Tensor) -> list[Tensor]:
        return list(self.encoder(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x)[-1].mean(dim=(2, 3)))


def build_encoder(segmentor: Union[dict, nn.Module]) -> tuple[nn.Module, dict]:
    """The encoder of the segmentor a downstream config builds, and its description.

    Building the whole segmentor (not only ``smp.encoders.get_encoder``) guarantees that the
    pretrained encoder is the module ``SMPSegmentor.net.encoder`` of the same config, with the
    same keys (e.g. the UNet-ResNet-18 of ``configs/_base_/models/unet_resnet18.py``).
    """
    seg = MODELS.build(dict(segmentor)) if isinstance(segmentor, dict) else segmentor
    net = getattr(seg, 'net', None)
    encoder = getattr(net, 'encoder', None)
    if encoder is None:
        raise ValueError(
            f'model.segmentor ({type(seg).__name__}) has no `net.encoder`: pretraining '
            "needs an SMPSegmentor, e.g. segmentor=dict(type='SMPSegmentor', arch='Unet', "
            "encoder_name='resnet18')."
        )
    meta = dict(
        segmentor_type=type(seg).__name__,
        arch=getattr(seg, 'arch', None),
        encoder_name=getattr(seg, 'encoder_name', None),
        in_channels=int(getattr(encoder, '_in_channels', 3)),
        out_channels=list(getattr(encoder, 'out_channels', [])),
    )
    return encoder, meta


class SelfSupervisedPretrainer(BaseModel):
    """Base of the pretraining methods: views, photometric noise, diagnostics, the step.

    Subclasses implement :meth:`loss` (``{'<method>.loss_<name>': tensor, diagnostics}``) and
    hold the trainable network as ``student`` (a module with the encoder at
    ``student.encoder``) and, for the momentum-encoder methods, a
    :class:`uda.models.MomentumTeacher` as ``teacher``.

    Args:
        segmentor: Config of the downstream segmentor; only its encoder is trained.
        data_preprocessor: The segmentation configs' ``SegDataPreprocessor`` (normalisation).
        photometric: One photometric config dict per view name, as the terms take it
            (:func:`uda.augment.photometric.build_photometric`: ``dict(preset='mocov2_view')``
            or the keyword arguments of :class:`uda.augment.PhotometricAugment`); a view not
            listed, or None, gets none.
        init_cfg: mmengine weight initialisation.
    """

    student: nn.Module

    def __init__(
        self,
        segmentor: dict,
        data_preprocessor: Optional[dict] = None,
        photometric: Optional[dict[str, Optional[dict]]] = None,
        init_cfg: Optional[dict] = None,
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.encoder_meta: dict[str, Any] = {}
        self.photometric = nn.ModuleDict()
        self._view_names: dict[str, str] = {}
        for i, (view, cfg) in enumerate((photometric or {}).items()):
            if cfg is None:
                continue
            if not isinstance(cfg, dict):
                raise ValueError(
                    f"model.photometric['{view}']={cfg!r}: give one config dict, e.g. "
                    "dict(preset='mocov2_view') or dict(jitter=(0.4, 0.4, 0.4, 0.1), jitter_p=0.8)."
                )
            augment = build_photometric(cfg, f"model.photometric['{view}']")
            assert augment is not None
            # ModuleDict keys may not contain '.', view names do ('images.query').
            self._view_names[view] = f'view{i}'
            self.photometric[f'view{i}'] = augment

    def encoder_state_dict(self) -> dict[str, Tensor]:
        """The trained encoder's weights, keys as in ``SMPSegmentor.net.encoder``."""
        encoder = self.student.get_submodule('encoder')
        return {k: v.detach().cpu().clone() for k, v in encoder.state_dict().items()}

    @staticmethod
    def current_iter() -> int:
        it = MessageHub.get_current_instance().get_info('iter')
        return int(it) if it is not None else 0

    def view(self, inputs: dict[str, Tensor], name: str) -> Tensor:
        """View ``name`` of the batch [B, 3, H, W], normalised, with its photometric noise."""
        if name not in inputs:
            raise KeyError(
                f"The batch has no view '{name}' (it has {sorted(inputs)}). Name the views "
                'of the train dataset branch as the model expects, e.g. '
                'branches=dict(images=dict(dataset=..., views=dict(query=[...], key=[...]))).'
            )
        x = inputs[name]
        key = self._view_names.get(name)
        if key is None:
            return x
        pre = self.data_preprocessor
        return photometric_view(x, self.photometric[key], pre.normalize, pre.denormalize)

    def loss(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        raise NotImplementedError

    def forward(
        self, inputs: Any, data_samples: Any = None, mode: str = 'loss'
    ) -> Union[dict[str, Tensor], list]:
        if mode != 'loss':
            raise ValueError(
                f"{type(self).__name__} only trains (mode='loss', got {mode!r}); evaluate the "
                'encoder downstream with tools/train.py (a linear probe or fine-tuning).'
            )
        if not isinstance(inputs, dict):
            raise TypeError(
                f'{type(self).__name__} expects a batch of named views (a dict), got '
                f'{type(inputs).__name__}: use a MultiBranchDataset branch with views.'
            )
        return self.loss(inputs)

    def before_optimizer_step(self) -> None:
        """Between the backward pass and the optimiser step (DINO cancels head gradients)."""

    def train_step(self, data: Any, optim_wrapper: OptimWrapper) -> dict[str, Tensor]:
        """``BaseModel.train_step`` with a finiteness check and :meth:`before_optimizer_step`."""
        with optim_wrapper.optim_context(self):
            data = self.data_preprocessor(data, True)
            losses = self._run_forward(data, mode='loss')
        parsed, log_vars = self.parse_losses(losses)
        if not torch.isfinite(parsed):
            bad = [k for k, v in losses.items() if not torch.isfinite(v).all()]
            raise FloatingPointError(
                f'Loss became {parsed.item()} at iteration {self.current_iter()} (non-finite: '
                f'{bad}). Lower the learning rate or enable optim_wrapper.clip_grad.'
            )
        optim_wrapper.backward(optim_wrapper.scale_loss(parsed))
        if optim_wrapper.should_update():
            self.before_optimizer_step()
            optim_wrapper.step()
            optim_wrapper.zero_grad()
        return log_vars
