"""The dataset base configs build from tiny official trees whose roots come from env vars."""

import os

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image

from uda.engine.config import load_config
from uda.registry import DATASETS, METRICS

ROOT = os.path.join(os.path.dirname(__file__), '..', '..')
BASES = os.path.join(ROOT, 'configs', '_base_', 'datasets')


def _img(path, h, w):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), 100, np.uint8)).save(path)


def _gta5(root):
    _img(root / 'images/00001.png', 105, 191)  # resized to 720x1280 on load
    (root / 'labels').mkdir()
    lbl = Image.fromarray(np.full((105, 191), 26, np.uint8), mode='P')  # labelId 26 = car
    lbl.putpalette([c for i in range(256) for c in (i, i // 2, 255 - i)])
    lbl.save(root / 'labels/00001.png')


def _cityscapes(root):
    for split in ('train', 'val'):
        _img(root / f'leftImg8bit/{split}/ulm/ulm_000000_000019_leftImg8bit.png', 64, 128)
        (root / f'gtFine/{split}/ulm').mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((64, 128), 7, np.uint8)).save(
            root / f'gtFine/{split}/ulm/ulm_000000_000019_gtFine_labelIds.png'
        )


def _synthia(root):
    _img(root / 'RGB/0000000.png', 512, 530)  # no resize: just above the crop
    (root / 'GT/LABELS').mkdir(parents=True)
    lbl = np.zeros((512, 530, 3), np.uint16)
    lbl[..., 2] = 8  # car, in the first (red) file channel
    cv2.imwrite(str(root / 'GT/LABELS/0000000.png'), lbl)


def _camvid(root):
    for split in ('train', 'test'):
        _img(root / f'{split}/0006R0_f0.png', 320, 330)
        (root / f'{split}annot').mkdir()
        Image.fromarray(np.full((320, 330), 8, np.uint8)).save(root / f'{split}annot/0006R0_f0.png')
        (root / f'{split}.txt').write_text(f'{split}/0006R0_f0.png {split}annot/0006R0_f0.png\n')


@pytest.mark.parametrize(
    'base,roots,source_gt',
    [
        ('gta2cityscapes_512x512.py', dict(GTA5_ROOT=_gta5, CITYSCAPES_ROOT=_cityscapes), 13),
        (
            'synthia2cityscapes_512x512.py',
            dict(SYNTHIA_ROOT=_synthia, CITYSCAPES_ROOT=_cityscapes),
            13,
        ),
        (
            'camvid2cityscapes_320x320.py',
            dict(CAMVID_ROOT=_camvid, CITYSCAPES_ROOT=_cityscapes),
            13,
        ),
    ],
)
def test_base_builds_from_env_roots(tmp_path, monkeypatch, base, roots, source_gt):
    for var, write in roots.items():
        write(tmp_path / var)
        monkeypatch.setenv(var, str(tmp_path / var))
    cfg = Config.fromfile(os.path.join(BASES, base))
    branches = cfg.train_dataloader.dataset.branches
    src, tgt = DATASETS.build(branches.source), DATASETS.build(branches.target)
    val = DATASETS.build(cfg.val_dataloader.dataset)
    s = src[0]
    assert tuple(s['inputs'].shape[1:]) == cfg.crop_size
    assert set(s['data_samples']['gt_sem_seg'].unique().tolist()) == {source_gt}
    assert 'gt_sem_seg' not in tgt[0]['data_samples']
    v = val[0]
    assert v['inputs'].shape == (3, 512, 1024)
    assert set(v['data_samples']['gt_sem_seg'].unique().tolist()) == {0}  # road
    METRICS.build(cfg.val_evaluator)


def test_missing_env_root_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv('GTA5_ROOT', raising=False)
    monkeypatch.chdir(tmp_path)  # the default root data/gta5 does not exist here
    cfg = Config.fromfile(os.path.join(BASES, 'gta2cityscapes_512x512.py'))
    with pytest.raises(FileNotFoundError, match=r'GTA5 root data/gta5 is not a folder.*GTA5_ROOT'):
        DATASETS.build(cfg.source_train)


def test_root_from_cfg_options(tmp_path):
    _camvid(tmp_path / 'cv')
    leaf = os.path.join(ROOT, 'configs', 'abn', 'abn_unet-resnet18_200_camvidday2dusk-128x128.py')
    cfg = load_config(
        leaf,
        {
            'val_dataloader.dataset.data_root': str(tmp_path / 'cv'),
            'val_dataloader.dataset.sequences': ['0006R0'],
        },
        work_dir=str(tmp_path / 'wd'),
    )
    val = DATASETS.build(cfg.val_dataloader.dataset)
    assert val.items[0][0] == str(tmp_path / 'cv' / 'test/0006R0_f0.png')
