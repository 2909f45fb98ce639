"""The README's "Own data" recipe: a list file, a protocol JSON and a config train and validate."""

import json
import os

import numpy as np
from mmengine.config import Config
from mmengine.runner import Runner
from PIL import Image

ROOT = os.path.join(os.path.dirname(__file__), '..', '..')


def _write_dataset(root, n=4, size=(32, 48)):
    """Two-class images: label 1 where the image is bright, 0 elsewhere, 255 on a border."""
    rng = np.random.default_rng(0)
    os.makedirs(os.path.join(root, 'images'))
    os.makedirs(os.path.join(root, 'labels'))
    lines = []
    for i in range(n):
        lbl = (rng.random(size) > 0.5).astype(np.uint8)
        img = np.repeat((lbl * 200 + 20)[..., None], 3, -1).astype(np.uint8)
        lbl[0] = 255
        Image.fromarray(img).save(os.path.join(root, 'images', f'{i}.png'))
        Image.fromarray(lbl).save(os.path.join(root, 'labels', f'{i}.png'))
        lines.append(f'images/{i}.png labels/{i}.png')
    with open(os.path.join(root, 'train.txt'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    with open(os.path.join(root, 'classes.json'), 'w') as f:
        json.dump(
            dict(name='mine', classes=['background', 'thing'], palette=[[0, 0, 0], [255, 0, 0]]), f
        )


def test_own_data_recipe_trains_and_validates(tmp_path):
    data = tmp_path / 'mine'
    _write_dataset(str(data))
    cfg_path = tmp_path / 'mine_cfg.py'
    base = os.path.abspath(os.path.join(ROOT, 'configs', '_base_'))
    # The config of the README recipe, with the toy network of the tests.
    cfg_path.write_text(f"""
_base_ = ['{base}/methods/source_only.py', '{base}/schedules/adamw_poly_400.py']
data_root = '{data}'
protocol = data_root + '/classes.json'
labelled = dict(type='ListFileDataset', data_root=data_root, list_file='train.txt',
                protocol=protocol)
model = dict(segmentor=dict(type='ToySegmentor', num_classes=2),
             data_preprocessor=dict(type='SegDataPreprocessor', size_divisor=1))
train_dataloader = dict(
    batch_size=2, num_workers=0, sampler=dict(type='MultiBranchInfiniteSampler'),
    collate_fn=dict(type='uda_collate'),
    dataset=dict(type='MultiBranchDataset', branches=dict(source=labelled)))
val_dataloader = dict(batch_size=2, num_workers=0, sampler=dict(type='DefaultSampler',
                      shuffle=False), collate_fn=dict(type='uda_collate'), dataset=labelled)
val_evaluator = dict(type='IoUMetric', protocol=protocol)
test_dataloader, test_evaluator = val_dataloader, val_evaluator
train_cfg = dict(max_iters=2, val_interval=2)
default_hooks = dict(checkpoint=dict(interval=2), visualization=dict(interval=1))
""")
    cfg = Config.fromfile(str(cfg_path))
    cfg.work_dir = str(tmp_path / 'work')
    cfg.visualizer = dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend')])
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.message_hub.get_scalar('val/mIoU').current()
    assert 0.0 <= metrics <= 100.0
    assert runner.train_dataloader.dataset.metainfo['classes'] == ('background', 'thing')
