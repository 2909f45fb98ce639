"""DenseCL: MoCo v2 plus a per-location contrast between matched positions of the two views."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from lightly.loss import NTXentLoss
from lightly.models.modules import DenseCLProjectionHead
from lightly.models.modules.memory_bank import MemoryBankModule
from lightly.models.utils import select_most_similar
from torch import Tensor

from uda.models.batchnorm import batch_norm_batch_stats
from uda.models.teacher import MomentumTeacher
from uda.pretrain.base import (
    SelfSupervisedPretrainer,
    build_encoder,
    embedding_std,
)
from uda.pretrain.moco import make_persistent
from uda.registry import MODELS


def dense_info_nce(q: Tensor, k: Tensor, negatives: Tensor, temperature: float) -> Tensor:
    """InfoNCE of every location: its matched key against the dense queue.

    ``-log(exp(q.k / T) / (exp(q.k / T) + sum_j exp(q.n_j / T)))`` averaged over all B * S
    locations (WXinlong/DenseCL openselfsup/models/densecl.py ``l_pos_dense`` /
    ``l_neg_dense`` through ``ContrastiveHead``).

    Args:
        q: L2-normalised query locations [B, S, D].
        k: L2-normalised matched keys [B, S, D].
        negatives: L2-normalised queue [K, D].
        temperature: Softmax temperature.
    """
    q = q.flatten(0, 1)
    pos = (q * k.flatten(0, 1)).sum(dim=1, keepdim=True)
    neg = q @ negatives.t()
    logits = torch.cat([pos, neg], dim=1) / temperature
    return F.cross_entropy(logits, logits.new_zeros(logits.shape[0], dtype=torch.long))


class DenseCLNetwork(nn.Module):
    """Encoder + DenseCL neck: a global MLP on the pooled last stage and a per-location MLP
    (1x1 convolutions, as ``DenseCLNeck.mlp2``) on its grid.

    ``forward(x)`` returns ``(global [B, D], grid [B, S, D], pooled grid [B, D],
    backbone grid [B, S, C])`` with S = h * w locations of the last stage.
    """

    def __init__(self, encoder: nn.Module, width: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__()
        self.encoder = encoder
        # lightly's DenseCLProjectionHead: Linear-ReLU-Linear; on [B, S, C] it is the
        # reference's conv1x1-ReLU-conv1x1 for the grid.
        self.head = DenseCLProjectionHead(width, hidden_dim, out_dim)
        self.dense_head = DenseCLProjectionHead(width, hidden_dim, out_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        feat = list(self.encoder(x))[-1]  # [B, C, h, w]
        grid = feat.flatten(2).transpose(1, 2)  # [B, S, C]
        dense = self.dense_head(grid)  # [B, S, D]
        return self.head(feat.mean(dim=(2, 3))), dense, dense.mean(dim=1), grid


@MODELS.register_module()
class DenseCL(SelfSupervisedPretrainer):
    """DenseCL (Wang et al., CVPR 2021, arXiv:2011.09157) on the segmentor's encoder.

    MoCo v2 on the pooled features (global InfoNCE against a queue of keys) plus a dense
    InfoNCE: every location of the query's last-stage grid is matched to the key location
    whose *backbone* feature is most similar (cosine, ``select_most_similar`` of lightly;
    densecl.py ``backbone_sim_matrix.max(dim=2)``), and contrasted against a second queue of
    the keys' pooled dense projections. Loss = (1 - lambda) global + lambda dense, lambda 0.5.
    Reference values (WXinlong/DenseCL densecl.py, configs densecl_r50): queue 65536, dim
    128, momentum 0.999, temperature 0.2, neck hidden = encoder width (2048).

    Matching by feature similarity needs no geometric bookkeeping of the crops, so the views
    are the same albumentations crops as MoCo's. Deliberate differences from the reference:
    as :class:`uda.pretrain.MoCoV2` (no shuffle BN on one device, BN statistics in the
    momentum update, lightly's queue wrap-around).

    Args:
        segmentor: Downstream segmentor config; its encoder is pretrained.
        queue_size: Keys in each queue (65536 in the reference).
        temperature: InfoNCE temperature of both losses (0.2).
        loss_lambda: Weight of the dense loss, (1 - lambda) for the global one (0.5).
        proj_hidden_dim: Hidden width of both heads (None: the encoder's last channels).
        proj_dim: Embedding dimension (128).
        momentum: Key encoder EMA momentum per step (0.999).
        query_view: Batch view embedded by the query encoder.
        key_view: Batch view embedded by the key encoder.
        data_preprocessor: The segmentation configs' data preprocessor.
        photometric: One photometric config dict per view (``build_photometric``).
    """

    def __init__(
        self,
        segmentor: dict,
        queue_size: int = 65536,
        temperature: float = 0.2,
        loss_lambda: float = 0.5,
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
        if int(queue_size) < 1 or not 0.0 <= float(loss_lambda) <= 1.0:
            raise ValueError(
                f'DenseCL(queue_size={queue_size}, loss_lambda={loss_lambda}): the queues need '
                '>= 1 key and loss_lambda is a weight in [0, 1].'
            )
        encoder, self.encoder_meta = build_encoder(segmentor)
        width = int(self.encoder_meta['out_channels'][-1])
        self.student = DenseCLNetwork(encoder, width, int(proj_hidden_dim or width), int(proj_dim))
        self.teacher = MomentumTeacher(self.student, momentum=momentum, interval=1, start_iter=0)
        size = (int(queue_size), int(proj_dim))
        self.criterion = NTXentLoss(temperature=float(temperature), memory_bank_size=size)
        # The dense queue holds the keys' pooled dense projections (densecl.py ``queue2``).
        self.dense_queue = MemoryBankModule(size=size, feature_dim_first=False)
        make_persistent(self.criterion.memory_bank, 'bank', 'bank_ptr')
        make_persistent(self.dense_queue, 'bank', 'bank_ptr')
        self.temperature, self.loss_lambda = float(temperature), float(loss_lambda)
        self.query_view, self.key_view = query_view, key_view

    def loss(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        q, q_grid, _, q_feat = self.student(self.view(inputs, self.query_view))
        with batch_norm_batch_stats(self.teacher.net):
            k, k_grid, k_pooled, k_feat = self.teacher(self.view(inputs, self.key_view))
        loss_global = self.criterion(q, k.detach())
        k_matched = select_most_similar(q_feat.detach(), k_feat, F.normalize(k_grid, dim=-1))
        # Negatives = the queue before this step's keys enter it (as the global queue).
        _, negatives = self.dense_queue(F.normalize(k_pooled, dim=-1), update=True)
        loss_dense = dense_info_nce(
            F.normalize(q_grid, dim=-1), k_matched, negatives, self.temperature
        )
        return {
            'densecl.loss_global': (1.0 - self.loss_lambda) * loss_global,
            'densecl.loss_dense': self.loss_lambda * loss_dense,
            'densecl.emb_std': embedding_std(q),
            'densecl.dense_emb_std': embedding_std(q_grid.flatten(0, 1)),
            'densecl.momentum': q.new_tensor(self.teacher.momentum_now()),
        }
