"""A single-stage CAM model learns from image labels alone, above chance, on built-in scenes."""

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper

from uda.data import MultiBranchDataset, SyntheticDataset, uda_collate
from uda.data.classes import get_protocol
from uda.registry import MODELS


@pytest.mark.slow
def test_cam_learns_above_chance_from_image_labels():
    torch.manual_seed(0)
    size = (64, 128)
    crop = [dict(type='RandomCrop', height=32, width=48), dict(type='HorizontalFlip', p=0.5)]
    weak = dict(
        type='SyntheticDataset',
        style='target',
        num_samples=200,
        seed=0,
        size=size,
        pipeline=crop,
        with_label=False,
        image_labels='from_cropped_mask',
    )
    data = MultiBranchDataset(dict(weak=weak))
    model = MODELS.build(
        dict(
            type='Adapter',
            segmentor=dict(
                type='SMPSegmentor',
                arch='Unet',
                encoder_name='resnet18',
                num_classes=19,
                decoder_channels=(64, 32, 16, 16, 16),
                encoder_depth=5,
            ),
            data_preprocessor=dict(type='SegDataPreprocessor', size_divisor=32),
            terms=dict(
                cam=dict(type='SingleStageCAM', branch='weak', bg_logit=None),
                cam_mask=dict(
                    type='SingleStageCAMMask',
                    branch='weak',
                    bg_logit=None,
                    start_iter=50,
                    pamr_iter=5,
                ),
            ),
        )
    )
    wrapper = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4))
    g = torch.Generator().manual_seed(0)
    model.train()
    for it in range(150):
        idx = torch.randint(0, len(data), (8,), generator=g).tolist()
        batch = uda_collate([data[(i,)] for i in idx])
        MessageHub.get_current_instance().update_info('iter', it)
        model.train_step(batch, wrapper)
    # Evaluate on labelled target scenes of another seed (synthetic9 classes).
    val = SyntheticDataset(style='target', num_samples=16, seed=1000, size=size)
    model.eval()
    eval_ids = torch.tensor(get_protocol('synthetic9').eval_ids)
    conf = torch.zeros(19, 19)
    const = torch.zeros(19, 19)  # the best constant prediction: the most frequent class
    gts = [val[i]['data_samples']['gt_sem_seg'] for i in range(len(val))]
    majority = torch.bincount(torch.cat([g.flatten() for g in gts]).clamp(max=18), minlength=19)
    top = int(majority[eval_ids].argmax())
    for i in range(len(val)):
        sample = val[i]
        d = model.data_preprocessor(uda_collate([sample]), False)
        pred = model.predict(d['inputs'], d['data_samples'])[0]['pred_sem_seg']
        gt = sample['data_samples']['gt_sem_seg']
        ok = gt != 255
        conf += torch.bincount(gt[ok] * 19 + pred[ok], minlength=361).view(19, 19)
        const[:, eval_ids[top]] += torch.bincount(gt[ok], minlength=19).float()

    def miou(c):
        iou = c.diag() / (c.sum(0) + c.sum(1) - c.diag()).clamp(min=1)
        return iou[eval_ids].mean().item(), iou[eval_ids]

    learnt, per_class = miou(conf)
    constant, _ = miou(const)
    assert learnt > constant + 0.03, (learnt, constant, per_class)
    assert int((per_class > 0.1).sum()) >= 3, per_class  # not one class everywhere
