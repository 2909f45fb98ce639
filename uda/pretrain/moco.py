"""MoCo v2: contrast a query view against its momentum-encoded key and a queue of old keys."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from lightly.loss import NTXentLoss
from lightly.models.modules import MoCoProjectionHead
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


def make_persistent(module: torch.nn.Module, *names: str) -> None:
    """Save ``module``'s buffers ``names`` in its state dict (checkpoints, ``--resume``).

    lightly registers the memory bank and its pointer with ``persistent=False``
    (lightly/models/modules/memory_bank.py), so a resumed run would restart from a random
    queue; MoCo's reference registers ``queue`` and ``queue_ptr`` as ordinary buffers.
    """
    for name in names:
        if name not in module._buffers:
            raise KeyError(f'{type(module).__name__} has no buffer {name!r}.')
        module._non_persistent_buffers_set.discard(name)


@torch.no_grad()
def contrast_accuracy(q: Tensor, k: Tensor, negatives: Tensor) -> Tensor:
    """Share of queries [B, D] whose positive key [B, D] is more similar than every negative
    [K, D] (cosine): the InfoNCE top-1 accuracy, a diagnostic that, unlike the loss, does not
    depend on the number of negatives."""
    q, k, n = (F.normalize(t.detach().float(), dim=-1) for t in (q, k, negatives))
    pos = (q * k).sum(dim=1)
    return (pos > (q @ n.t()).max(dim=1).values).float().mean()


@MODELS.register_module()
class MoCoV2(SelfSupervisedPretrainer):
    """MoCo v2 (Chen et al., arXiv:2003.04297; He et al., CVPR 2020) on the segmentor's encoder.

    The query encoder (the student: encoder + 2-layer MLP head, hidden width = the encoder's
    last-stage channels as in facebookresearch/moco moco/builder.py ``mlp=True``: 2048-2048-128
    for ResNet-50, 512-512-128 for ResNet-18) embeds the query view; the key encoder, a
    :class:`uda.models.MomentumTeacher` updated by :class:`uda.engine.EMATeacherHook` with
    ``m = 0.999`` per step (main_moco.py ``--moco-m``), embeds the key view. The loss is
    InfoNCE over the positive key and a queue of ``queue_size`` earlier keys (main_moco.py
    ``--moco-k 65536``, ``--moco-t 0.2`` for v2), the newest keys replacing the oldest after
    each step: lightly's ``NTXentLoss(memory_bank_size=(K, dim))``.

    Deliberate differences from the reference: single-device batches have no shuffle BN (the
    key encoder normalises over the whole key batch, as lightly's MoCo example); the momentum
    update also averages BN running statistics (unused: the key encoder runs on batch
    statistics); a queue whose size is not a multiple of the batch drops the keys that do not
    fit before wrapping (lightly), where the reference asserts ``K % batch_size == 0``.

    Args:
        segmentor: Downstream segmentor config; its encoder is pretrained.
        queue_size: Keys in the queue (65536 in the reference; a few epochs of the dataset
            on small data, so that queued keys are not too stale).
        temperature: InfoNCE temperature (0.2 for MoCo v2, 0.07 for v1).
        proj_hidden_dim: Hidden width of the MLP head (None: the encoder's last channels).
        proj_dim: Embedding dimension (128).
        momentum: Key encoder EMA momentum per step (0.999).
        query_view: Batch view embedded by the query encoder.
        key_view: Batch view embedded by the key encoder.
        data_preprocessor: The segmentation configs' data preprocessor.
        photometric: One photometric config dict per view (``build_photometric``;
            ``dict(preset='mocov2_view')`` for both in the base config).
    """

    def __init__(
        self,
        segmentor: dict,
        queue_size: int = 65536,
        temperature: float = 0.2,
        proj_hidden_dim: Optional[int] = None,
        proj_dim: int = 128,
        momentum: float = 0.999,
        query_view: str = 'images.query',
        key_view: str = 'images.key',
        data_preprocessor: Optional[dict] = None,
        photometric: Optional[dict[str, Optional[dict]]] = None,
        init_cfg: Optional[dict] = None,
    ) -> None:
        super().__init__(segmentor, data_preprocessor, photometric, init_cfg)
        if int(queue_size) < 1:
            raise ValueError(f'MoCoV2(queue_size={queue_size}): the queue needs >= 1 key.')
        encoder, self.encoder_meta = build_encoder(segmentor)
        width = int(self.encoder_meta['out_channels'][-1])
        head = MoCoProjectionHead(width, int(proj_hidden_dim or width), int(proj_dim))
        self.student = EncoderWithHead(encoder, head)
        self.teacher = MomentumTeacher(self.student, momentum=momentum, interval=1, start_iter=0)
        self.criterion = NTXentLoss(
            temperature=float(temperature), memory_bank_size=(int(queue_size), int(proj_dim))
        )
        make_persistent(self.criterion.memory_bank, 'bank', 'bank_ptr')
        self.query_view, self.key_view = query_view, key_view

    @property
    def queue(self) -> Tensor:
        """The queue of keys [K, D] (L2-normalised), oldest overwritten first."""
        return self.criterion.memory_bank.bank

    def loss(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        q = self.student(self.view(inputs, self.query_view))
        with batch_norm_batch_stats(self.teacher.net):
            k = self.teacher(self.view(inputs, self.key_view))
        acc = contrast_accuracy(q, k, self.queue)  # before this step's keys enter the queue
        return {
            'moco.loss_infonce': self.criterion(q, k.detach()),
            'moco.acc': acc,
            'moco.emb_std': embedding_std(q),
            'moco.momentum': q.new_tensor(self.teacher.momentum_now()),
        }
