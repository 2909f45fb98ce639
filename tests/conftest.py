"""Shared fixtures: a one-conv ToySegmentor, tiny synthetic batches and Runner configs."""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
import torch
import torch.nn as nn
from torch import Tensor

from uda.models.trainable import apply_train_only
from uda.registry import MODELS

SHARED_CAMVID = os.path.join(os.path.dirname(__file__), '..', '..', 'shared', 'data', 'camvid')


@MODELS.register_module(force=True)
class ToySegmentor(nn.Module):
    """conv3x3 -> BN -> ReLU -> conv1x1: tiny, but with BatchNorm so ABN is observable.

    Same interface as ``SMPSegmentor``: ``extract_feat`` gives ``[x, feat]``, ``decode`` the
    logits, and the parameter-free heads read the logits (``aux`` is the logits themselves,
    ``cls`` their spatial mean [B, K]) so that adding them changes no weights or seeds.
    """

    def __init__(
        self,
        num_classes: int = 19,
        channels: int = 4,
        constant_logit: Any = None,
        train_only: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        # SMPSegmentor's option (index, value): that class's logit is a constant.
        self.constant_logit = (
            None
            if constant_logit is None
            else (int(constant_logit.get('index', 0)), float(constant_logit.get('value', 1.0)))
        )
        self.conv = nn.Conv2d(3, channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(channels)
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        self.heads = nn.ModuleDict(
            dict(aux=nn.Identity(), cls=nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()))
        )
        if train_only is not None:  # SMPSegmentor's option (TENT: the BN affine only)
            apply_train_only(self, train_only)

    def extract_feat(self, x: Tensor) -> list[Tensor]:
        return [x, torch.relu(self.bn(self.conv(x)))]

    def decode(self, features: list[Tensor], size: Any = None) -> Tensor:
        logits = self.classifier(features[-1])
        if self.constant_logit is not None:
            index, value = self.constant_logit
            const = torch.zeros_like(logits[:, :1]) + value
            logits = torch.cat([logits[:, :index], const, logits[:, index + 1 :]], 1)
        if size is not None and tuple(logits.shape[-2:]) != tuple(size):
            logits = nn.functional.interpolate(logits, tuple(size), mode='bilinear')
        return logits

    def head(self, name: str, features: list[Tensor], size: Any = None) -> Tensor:
        if name not in self.heads:
            raise ValueError(f'ToySegmentor has no head {name!r}; it has {list(self.heads)}.')
        return self.heads[name](self.decode(features, size))

    def forward(
        self,
        x: Tensor,
        return_features: bool = False,
        return_aux: bool = False,
        return_cls: bool = False,
    ) -> Any:
        features = self.extract_feat(x)
        logits = self.decode(features)
        if not (return_features or return_aux or return_cls):
            return logits
        out = dict(logits=logits)
        if return_features:
            out['features'] = features
            out['decoder'] = features[-1]
        if return_aux:
            out['aux_logits'] = self.heads['aux'](logits)
        if return_cls:
            out['cls_logits'] = self.heads['cls'](logits)
        return out


def toy_batch(
    branches: tuple[str, ...] = ('source', 'target'),
    batch: int = 2,
    h: int = 32,
    w: int = 32,
    labelled: tuple[str, ...] = ('source',),
    seed: int = 0,
) -> dict:
    """A collated multi-branch batch with uint8 images and labels containing 255 pixels."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name in branches:
        imgs = [
            torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8) for _ in range(batch)
        ]
        samples = []
        for i in range(batch):
            s: dict[str, Any] = dict(img_path=f'{name}_{i}', ori_shape=(h, w), img_shape=(h, w))
            if name in labelled:
                gt = torch.randint(0, 19, (h, w), generator=g)
                gt[:4] = 255
                s['gt_sem_seg'] = gt
            samples.append(s)
        out[name] = dict(inputs=imgs, data_samples=samples)
    return out


def toy_runner_cfg(
    work_dir: str,
    max_iters: int = 2,
    val_interval: int = 2,
    terms: Any = None,
    checkpoint_interval: int = 2,
    bn_policy: Any = 'target_only',
    labellers: Any = None,
) -> dict:
    """A complete Runner config on 4-sample synthetic data with the ToySegmentor (ABN by
    default: source CE and target-only BN statistics)."""
    size = (32, 64)
    src = dict(
        type='SyntheticDataset',
        style='source',
        num_samples=4,
        seed=0,
        size=size,
        pipeline=[dict(type='HorizontalFlip', p=0.5)],
    )
    tgt = dict(
        type='SyntheticDataset', style='target', num_samples=4, seed=0, size=size, with_label=False
    )
    val = dict(type='SyntheticDataset', style='target', num_samples=4, seed=1, size=size)
    return dict(
        default_scope='uda',
        work_dir=work_dir,
        # A dict config has no file name, so mmengine names the experiment (and its Visualizer
        # instance, with its save dir) by the second it starts: two runners started in the same
        # second would share one. A unique name keeps each run's panels in its own work dir.
        experiment_name=f'toy_{uuid.uuid4().hex[:12]}',
        model=dict(
            type='Adapter',
            segmentor=dict(type='ToySegmentor', num_classes=19),
            data_preprocessor=dict(type='SegDataPreprocessor', size_divisor=1),
            terms=terms or dict(src=dict(type='SourceCE')),
            bn_policy=bn_policy,
            labellers=labellers,
        ),
        train_dataloader=dict(
            batch_size=2,
            num_workers=0,
            sampler=dict(type='MultiBranchInfiniteSampler', shuffle=True),
            collate_fn=dict(type='uda_collate'),
            dataset=dict(type='MultiBranchDataset', branches=dict(source=src, target=tgt)),
        ),
        val_dataloader=dict(
            batch_size=2,
            num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='uda_collate'),
            dataset=val,
        ),
        val_evaluator=dict(
            type='IoUMetric',
            protocol='cityscapes19',
            eval_protocol='synthetic9',
            out_file=os.path.join(work_dir, 'metrics.json'),
        ),
        optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=val_interval),
        val_cfg=dict(type='ValLoop'),
        default_hooks=dict(
            logger=dict(type='LoggerHook', interval=1),
            checkpoint=dict(
                type='SafeCheckpointHook', by_epoch=False, interval=checkpoint_interval
            ),
            visualization=dict(type='SegVisualizationHook', interval=1),
            # As configs/_base_/default_runtime.py: drives model.teacher when there is one.
            teacher=dict(type='EMATeacherHook'),
        ),
        custom_hooks=[],
        visualizer=dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend')]),
        log_processor=dict(by_epoch=False),
        randomness=dict(seed=0),
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        log_level='WARNING',
    )


@pytest.fixture
def batch() -> dict:
    return toy_batch()


def toy_adversarial_runner_cfg(
    work_dir: str, max_iters: int, val_interval: int = 10, schedule_end: int = 4
) -> dict:
    """:func:`toy_runner_cfg` with an output-space adversarial term and its two optimisers
    (student SGD, discriminators Adam) on one poly schedule ending at ``schedule_end``."""
    cfg = toy_runner_cfg(
        work_dir,
        max_iters=max_iters,
        val_interval=val_interval,
        terms=dict(
            src=dict(type='SourceCE'),
            out=dict(
                type='OutputAdversarial',
                aux_weight=0,
                discriminator=dict(type='FCDiscriminator', channels=(8, 8, 8, 8)),
            ),
        ),
    )
    cfg['optim_wrapper'] = dict(
        constructor='AdapterOptimWrapperConstructor',
        student=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        discriminators=dict(
            type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-4, betas=(0.9, 0.99))
        ),
    )
    cfg['param_scheduler'] = [
        dict(type='PolyLR', power=0.9, eta_min=0, begin=0, end=schedule_end, by_epoch=False)
    ]
    return cfg
