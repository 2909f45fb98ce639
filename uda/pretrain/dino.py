"""DINO: self-distillation with no labels, the student predicting a momentum teacher's output."""

from __future__ import annotations

import warnings
from typing import Optional, Sequence

import kornia.augmentation as K
import torch
import torch.nn as nn
from lightly.loss import DINOLoss
from lightly.models.modules import DINOProjectionHead
from torch import Tensor

from uda.models.batchnorm import batch_norm_batch_stats
from uda.models.teacher import MomentumTeacher
from uda.pretrain.base import (
    EncoderWithHead,
    SelfSupervisedPretrainer,
    build_encoder,
    embedding_std,
)
from uda.registry import MODELS


def weight_normed_linear(in_dim: int, out_dim: int, fixed_norm: bool) -> nn.Linear:
    """DINO's last layer: a bias-free linear layer with weight normalisation, norms set to 1.

    As lightly's ``DINOProjectionHead.last_layer`` (facebookresearch/dino
    vision_transformer.py ``DINOHead``: ``weight_g`` filled with 1, frozen with
    ``norm_last_layer``), but through ``torch.nn.utils.parametrizations.weight_norm``: the
    deprecated ``nn.utils.weight_norm`` stores the weight as a non-leaf tensor, which
    ``copy.deepcopy`` (the momentum teacher's copy) cannot copy.
    """
    layer = nn.utils.parametrizations.weight_norm(nn.Linear(in_dim, out_dim, bias=False))
    g = layer.parametrizations.weight.original0
    with torch.no_grad():
        g.fill_(1.0)
    g.requires_grad_(not fixed_norm)
    return layer


def teacher_temperature(iteration: int, start: float, end: float, warmup_iters: int) -> float:
    """DINO's teacher temperature: linear from ``start`` to ``end`` over ``warmup_iters``, then
    ``end`` (facebookresearch/dino main_dino.py ``DINOLoss.teacher_temp_schedule``, per epoch
    there, per iteration here)."""
    if warmup_iters <= 0 or iteration >= warmup_iters:
        return float(end)
    if warmup_iters == 1:
        return float(start)
    return float(start + (end - start) * iteration / (warmup_iters - 1))


@MODELS.register_module()
class DINO(SelfSupervisedPretrainer):
    """DINO (Caron et al., ICCV 2021, arXiv:2104.14294) on the segmentor's encoder.

    The teacher (a :class:`uda.models.MomentumTeacher`, momentum 0.996 -> 1 along a cosine,
    facebookresearch/dino main_dino.py ``--momentum_teacher``) sees the global views; the
    student sees global and local views and predicts, for every pair of different views, the
    teacher's centred (``center_momentum`` 0.9) and sharpened (temperature 0.04,
    ``--teacher_temp``, optionally warmed up from ``--warmup_teacher_temp``) distribution over
    ``out_dim`` prototypes with its own temperature-0.1 softmax: lightly's ``DINOLoss``. Head:
    lightly's ``DINOProjectionHead`` (3-layer MLP 2048 hidden, GELU, 256 bottleneck, L2
    normalisation, weight-normalised last layer; main_dino.py ``DINOHead``). Views of one size
    go through a network together, so BN sees both global views in one batch as the
    reference's ``MultiCropWrapper``; the teacher normalises on batch statistics (train mode,
    as the reference teacher). The last layer gets no update during the first
    ``freeze_last_layer_iters`` iterations (``--freeze_last_layer``, 1 epoch).

    Deliberate differences: the momentum update also averages BN running statistics (unused:
    the teacher runs on batch statistics); the schedules run per iteration of the Runner.

    Args:
        segmentor: Downstream segmentor config; its encoder is pretrained.
        out_dim: Prototypes K (65536 in the reference; fewer on small data).
        hidden_dim: Hidden width of the head MLP (2048).
        bottleneck_dim: Bottleneck before the last layer (256).
        use_bn_in_head: BN in the head MLP (``--use_bn_in_head``, False).
        norm_last_layer: Fix the last layer's weight norms to 1 (``--norm_last_layer``, True).
        student_temp: Student softmax temperature (0.1).
        teacher_temp: Teacher temperature after warm-up (0.04).
        warmup_teacher_temp: Teacher temperature at iteration 0 (0.04).
        warmup_teacher_temp_iters: Iterations of the linear warm-up (0: none).
        center_momentum: EMA momentum of the teacher-output centre (0.9).
        momentum: Teacher momentum at the start of the cosine schedule (0.996).
        momentum_end: Teacher momentum at its end (1.0).
        momentum_iters: Length of the cosine schedule in iterations (None: the whole run,
            ``train_cfg.max_iters``, as the reference's ``epochs * len(data_loader)``).
        freeze_last_layer_iters: Iterations without last-layer updates.
        global_views: Batch views seen by teacher and student (2 in the reference).
        local_views: Smaller batch views seen by the student only (multi-crop; 8 in the
            reference, none to disable).
        solarize: Probability of solarisation per view name (0.2 on the second global view;
            PIL ``ImageOps.solarize`` at 128: pixels >= 0.5 inverted).
        data_preprocessor: The segmentation configs' data preprocessor.
        photometric: One photometric config dict per view (``build_photometric``).
    """

    def __init__(
        self,
        segmentor: dict,
        out_dim: int = 65536,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        use_bn_in_head: bool = False,
        norm_last_layer: bool = True,
        student_temp: float = 0.1,
        teacher_temp: float = 0.04,
        warmup_teacher_temp: float = 0.04,
        warmup_teacher_temp_iters: int = 0,
        center_momentum: float = 0.9,
        momentum: float = 0.996,
        momentum_end: float = 1.0,
        momentum_iters: Optional[int] = None,
        freeze_last_layer_iters: int = 0,
        global_views: Sequence[str] = ('images.global1', 'images.global2'),
        local_views: Sequence[str] = (),
        solarize: Optional[dict[str, float]] = None,
        data_preprocessor: Optional[dict] = None,
        photometric: Optional[dict[str, Optional[dict]]] = None,
        init_cfg: Optional[dict] = None,
    ) -> None:
        super().__init__(segmentor, data_preprocessor, photometric, init_cfg)
        if len(global_views) < 1 or len(global_views) + len(local_views) < 2:
            raise ValueError(
                f'DINO(global_views={tuple(global_views)}, local_views={tuple(local_views)}): '
                'the loss compares different views; give at least one global view and two '
                'views in all.'
            )
        encoder, self.encoder_meta = build_encoder(segmentor)
        width = int(self.encoder_meta['out_channels'][-1])
        with warnings.catch_warnings():
            # lightly builds the last layer with the deprecated nn.utils.weight_norm; it is
            # replaced right below.
            warnings.filterwarnings('ignore', '`torch.nn.utils.weight_norm` is deprecated')
            head = DINOProjectionHead(
                width,
                int(hidden_dim),
                int(bottleneck_dim),
                int(out_dim),
                batch_norm=bool(use_bn_in_head),
                freeze_last_layer=int(freeze_last_layer_iters),
                norm_last_layer=bool(norm_last_layer),
            )
        head.last_layer = weight_normed_linear(int(bottleneck_dim), int(out_dim), norm_last_layer)
        self.student = EncoderWithHead(encoder, head)
        self.momentum_iters = momentum_iters
        self.teacher = MomentumTeacher(
            self.student,
            momentum=momentum,
            interval=1,
            start_iter=0,
            momentum_end=momentum_end,
            cosine_updates=int(momentum_iters or 1),
        )
        self.criterion = DINOLoss(
            output_dim=int(out_dim),
            teacher_temp=float(teacher_temp),
            student_temp=float(student_temp),
            center_momentum=float(center_momentum),
            warmup_teacher_temp_epochs=0,  # the warm-up is computed per iteration here
        )
        self.teacher_temp = float(teacher_temp)
        self.warmup_teacher_temp = float(warmup_teacher_temp)
        self.warmup_teacher_temp_iters = int(warmup_teacher_temp_iters)
        self.freeze_last_layer_iters = int(freeze_last_layer_iters)
        self.global_views, self.local_views = list(global_views), list(local_views)
        self.solarize = nn.ModuleDict()
        self._solarize_names: dict[str, str] = {}
        for i, (view, p) in enumerate((solarize or {}).items()):
            if not 0.0 <= float(p) <= 1.0:
                raise ValueError(f"DINO(solarize['{view}']={p}): give a probability in [0, 1].")
            self._solarize_names[view] = f'view{i}'
            # thresholds=0, additions=0: threshold exactly 0.5, nothing added (kornia draws
            # the threshold from 0.5 +- thresholds).
            self.solarize[f'view{i}'] = K.RandomSolarize(thresholds=0.0, additions=0.0, p=p)

    def _schedule(self) -> None:
        """Length of the momentum schedule = the run's iterations, unless given."""
        if self.momentum_iters is None:
            from mmengine.logging import MessageHub

            total = MessageHub.get_current_instance().get_info('max_iters')
            if total is not None:
                self.teacher.cosine_updates = max(int(total), 1)

    def dino_view(self, inputs: dict[str, Tensor], name: str) -> Tensor:
        x = self.view(inputs, name)
        key = self._solarize_names.get(name)
        if key is None:
            return x
        pre = self.data_preprocessor
        rgb = (pre.denormalize(x) / 255.0).clamp(0, 1)
        return pre.normalize(self.solarize[key](rgb) * 255.0)

    @staticmethod
    def _forward_views(net: nn.Module, views: list[Tensor]) -> list[Tensor]:
        """One forward per view size (concatenated), split back per view."""
        out: list[Optional[Tensor]] = [None] * len(views)
        sizes: dict[tuple[int, int], list[int]] = {}
        for i, v in enumerate(views):
            sizes.setdefault((v.shape[-2], v.shape[-1]), []).append(i)
        for idx in sizes.values():
            y = net(torch.cat([views[i] for i in idx]))
            for i, part in zip(idx, y.chunk(len(idx))):
                out[i] = part
        return [o for o in out if o is not None]

    def loss(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        self._schedule()
        it = self.current_iter()
        globals_ = [self.dino_view(inputs, v) for v in self.global_views]
        locals_ = [self.dino_view(inputs, v) for v in self.local_views]
        with torch.no_grad(), batch_norm_batch_stats(self.teacher.net):
            t_out = self._forward_views(self.teacher, globals_)
        s_out = self._forward_views(self.student, globals_ + locals_)
        temp = teacher_temperature(
            it, self.warmup_teacher_temp, self.teacher_temp, self.warmup_teacher_temp_iters
        )
        loss = self.criterion([t.detach() for t in t_out], s_out, teacher_temp=temp)
        return {
            'dino.loss_distill': loss,
            'dino.emb_std': embedding_std(s_out[0]),
            'dino.momentum': loss.new_tensor(self.teacher.momentum_now()),
            'dino.teacher_temp': loss.new_tensor(temp),
        }

    def before_optimizer_step(self) -> None:
        """No last-layer update in the first iterations (main_dino.py
        ``cancel_gradients_last_layer``: the gradients are dropped, so not even weight decay
        moves the layer)."""
        head = self.student.head
        if isinstance(head, DINOProjectionHead):
            head.cancel_last_layer_gradients(self.current_iter())
