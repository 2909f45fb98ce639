"""How good are SAC's pseudo-labels? Teacher = a checkpoint's student, on labelled target data.

Runs SAC's view pipeline (views, teacher, fusion, class thresholds) on the labelled target
validation images of a config, warps the ground truth into the views (nearest neighbour) and
reports, per class: the share of pixels that get a pseudo-label, the precision of the kept
labels, and the accuracy of the plain single-view arg-max, so one can see whether self-training
has a correct signal to learn from.

    python benchmarks/sac_pseudo_labels.py CONFIG CHECKPOINT [--images 48]
"""

import argparse
import os
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from mmengine.config import Config  # noqa: E402

import uda.engine  # noqa: E402,F401
from uda.augment.views import warp  # noqa: E402
from uda.data.multi_branch import uda_collate  # noqa: E402
from uda.registry import DATASETS, MODELS  # noqa: E402


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='SAC config')
    parser.add_argument('checkpoint', help='checkpoint whose teacher labels the images')
    parser.add_argument('--images', type=int, default=48, help='target images labelled')
    parser.add_argument('--batch', type=int, default=2, help='images per batch')
    args = parser.parse_args()
    cfg = Config.fromfile(args.config)
    model = MODELS.build(cfg.model)
    state = torch.load(args.checkpoint, map_location='cpu', weights_only=False)['state_dict']
    model.student.load_state_dict(
        {k[len('student.') :]: v for k, v in state.items() if k.startswith('student.')}
    )
    model.teacher.init_from(model.student)
    model.eval()
    name, term = next(
        (n, lab) for n, lab in model.labellers.items() if type(lab).__name__ == 'SACLabeller'
    )
    dataset = DATASETS.build(cfg.val_dataloader.dataset)
    names = dataset.metainfo['classes']
    C = model.num_classes
    kept_pix = np.zeros(C)
    kept_ok = np.zeros(C)
    gt_pix = np.zeros(C)
    argmax_ok = np.zeros(C)
    fused_ok = np.zeros(C)
    n = min(args.images, len(dataset))
    for start in range(0, n, args.batch):
        batch = uda_collate([dataset[i] for i in range(start, min(start + args.batch, n))])
        data = model.data_preprocessor(batch, False)
        x, samples = data['inputs'], data['data_samples']
        # The labeller of training, on this labelled batch (one step's context).
        ctx = model.make_context({'target': x}, {'target': samples})
        pl = ctx.pseudo_labels('target', name)
        views, probs, fused = pl.views, pl.extras['view_probs'], pl.probs
        labels = pl.labels
        gt = torch.stack([s['gt_sem_seg'] for s in samples]).float()[:, None]
        gt_views = (
            warp(
                gt.repeat_interleave(views.num_views, 0) + 1,
                views.to_image,
                x.shape[-2:],
                mode='nearest',
            )[:, 0].long()
            - 1
        )
        gt_views[gt_views < 0] = 255
        ok = gt_views != 255
        g = gt_views[ok]
        gt_pix += np.bincount(g.numpy(), minlength=256)[:C]
        argmax_ok += np.bincount(g[probs.argmax(1)[ok] == g].numpy(), minlength=256)[:C]
        fused_ok += np.bincount(g[fused.argmax(1)[ok] == g].numpy(), minlength=256)[:C]
        lab = labels[ok]
        keep = lab != 255
        kept_pix += np.bincount(lab[keep].numpy(), minlength=256)[:C]
        kept_ok += np.bincount(lab[keep & (lab == g)].numpy(), minlength=256)[:C]
    present = [c for c in range(C) if gt_pix[c] > 0]
    print(f'{n} target images, {term.num_views} views each; teacher = {args.checkpoint}')
    print(
        '| class | GT share | single-view acc | fused acc | kept / GT pixels | '
        'kept precision |\n|---|---:|---:|---:|---:|---:|'
    )
    for c in present:
        prec = kept_ok[c] / kept_pix[c] if kept_pix[c] else float('nan')
        print(
            f'| {names[c]} | {gt_pix[c] / gt_pix.sum():.3f} | {argmax_ok[c] / gt_pix[c]:.3f} '
            f'| {fused_ok[c] / gt_pix[c]:.3f} | {kept_pix[c] / gt_pix[c]:.3f} | {prec:.3f} |'
        )
    tot = gt_pix[present].sum()
    print(
        f'\nall: single-view acc {argmax_ok.sum() / tot:.3f}, '
        f'fused acc {fused_ok.sum() / tot:.3f}, kept {kept_pix.sum() / tot:.3f} of pixels '
        f'with precision {kept_ok.sum() / max(kept_pix.sum(), 1):.3f}'
    )


if __name__ == '__main__':
    main()
