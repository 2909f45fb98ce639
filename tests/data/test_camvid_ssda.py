"""CamVid day -> dusk with a few labelled dusk frames: the split files and the SSDA configs.

The split files are in the repository (names only, no frames); the checks that read frames
use ``../shared/data/camvid`` and skip with a reason without it.
"""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest
from mmengine.config import Config

from tests.conftest import SHARED_CAMVID
from uda.data.splits import read_split_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPLITS = {'1_16': 4, '1_8': 8}  # ceil(62 / 16), ceil(62 / 8) of the 62 dusk train frames
needs_camvid = pytest.mark.skipif(
    not os.path.isfile(os.path.join(SHARED_CAMVID, 'train.txt')),
    reason=f'CamVid not found at {os.path.abspath(SHARED_CAMVID)} (shared data is optional)',
)


@pytest.mark.parametrize('name', sorted(SPLITS))
def test_split_files_partition_the_dusk_train_frames(name) -> None:
    d = os.path.join(ROOT, 'splits', 'camvid_dusk', name)
    labeled = read_split_file(os.path.join(d, 'labeled.txt'))
    unlabeled = read_split_file(os.path.join(d, 'unlabeled.txt'))
    images = [img for img, _ in labeled + unlabeled]
    assert len(labeled) == SPLITS[name] and len(images) == 62 == len(set(images))
    assert all(img.startswith('train/0001TP_') for img in images)  # dusk train, never test
    assert all(m == img.replace('train/', 'trainannot/') for img, m in labeled + unlabeled)


@needs_camvid
@pytest.mark.parametrize('name', sorted(SPLITS))
def test_labelled_frames_hold_every_class(name) -> None:
    from PIL import Image

    labeled = read_split_file(os.path.join(ROOT, 'splits', 'camvid_dusk', name, 'labeled.txt'))
    present = set()
    for _, mask in labeled:
        present |= set(np.unique(np.array(Image.open(os.path.join(SHARED_CAMVID, mask)))))
    assert set(range(11)) <= present  # the class-balanced draw labels all 11 classes


@needs_camvid
def test_ssda_configs_build_the_branches(monkeypatch) -> None:
    from mmengine.registry import init_default_scope

    from uda.registry import DATASETS

    monkeypatch.setenv('CAMVID_ROOT', os.path.abspath(SHARED_CAMVID))
    init_default_scope('uda')
    sizes = {}
    for path in sorted(glob.glob(os.path.join(ROOT, 'configs', 'ssda', '*.py'))):
        cfg = Config.fromfile(path)
        ds = DATASETS.build(cfg.train_dataloader.dataset)
        method, frac = os.path.basename(path).split('_')[0], path.split('-')[-2]
        sizes[f'{method} {frac}'] = {k: len(v) for k, v in ds.datasets.items()}
    assert sizes == {
        'sac-ssda 1of16': dict(source=305, target=58, target_labeled=4),
        'sac-ssda 1of8': dict(source=305, target=54, target_labeled=8),
        'supervised-ssda 1of16': dict(target_labeled=4),
        'supervised-ssda 1of8': dict(target_labeled=8),
    }
