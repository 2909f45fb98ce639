"""Image-level labels: list files, VOC masks, labels derived from masks, and their way to the
step context."""

import numpy as np
import pytest
import torch
from PIL import Image

from uda.data import ListFileDataset, MultiBranchDataset, SyntheticDataset, VOCDataset, uda_collate
from uda.data.classes import get_protocol
from uda.data.image_labels import read_image_labels
from uda.data.synthetic import write_split
from uda.registry import MODELS


def _write(path, text):
    path.write_text(text)
    return str(path)


def test_list_file_names_and_ids(tmp_path):
    p = _write(
        tmp_path / 'labels.txt',
        '# image classes\na.png sky 3\n\nsub/b.png "sign symbol" car  # trailing comment\nc.png\n',
    )
    table = read_image_labels(p, get_protocol('camvid11'), str(tmp_path))
    assert table[str(tmp_path / 'a.png')].tolist() == [0, 3]
    assert table[str(tmp_path / 'sub' / 'b.png')].tolist() == [6, 8]
    assert table[str(tmp_path / 'c.png')].tolist() == []


@pytest.mark.parametrize(
    'line, match',
    [
        ('a.png skyy', r"labels.txt:2: unknown class 'skyy'"),
        ('a.png 11', r'labels.txt:2: class id 11 is outside'),
        ('a.png "sky', r'labels.txt:2: cannot parse'),
    ],
)
def test_list_file_errors_name_file_and_line(tmp_path, line, match):
    p = _write(tmp_path / 'labels.txt', f'b.png road\n{line}\n')
    with pytest.raises(ValueError, match=match):
        read_image_labels(p, get_protocol('camvid11'), str(tmp_path))


def test_list_file_duplicate_and_missing_images(tmp_path):
    p = _write(tmp_path / 'labels.txt', 'a.png road\na.png sky\n')
    with pytest.raises(ValueError, match='listed twice'):
        read_image_labels(p, get_protocol('camvid11'), str(tmp_path))
    root = tmp_path / 'data'
    write_split(str(root), 'target', 2, size=(16, 32), list_name='train.txt')
    first = (root / 'train.txt').read_text().split()[0]
    _write(root / 'img_labels.txt', f'{first} road car\n')
    with pytest.raises(KeyError, match='has no line in the image-label file'):
        ListFileDataset(
            data_root=str(root),
            list_file='train.txt',
            with_label=False,
            image_labels='img_labels.txt',
        )


def test_list_file_dataset_carries_image_labels_without_masks(tmp_path):
    root = tmp_path / 'data'
    write_split(str(root), 'target', 2, size=(16, 32), list_name='train.txt')
    images = [line.split()[0] for line in (root / 'train.txt').read_text().splitlines()]
    _write(root / 'img_labels.txt', f'{images[0]} road car\n{images[1]} 10\n')
    ds = ListFileDataset(
        data_root=str(root),
        list_file='train.txt',
        with_label=False,
        image_labels='img_labels.txt',
    )
    samples = [ds[i]['data_samples'] for i in range(2)]
    assert samples[0]['img_labels'].tolist() == [0, 13] and 'gt_sem_seg' not in samples[0]
    assert samples[1]['img_labels'].tolist() == [10]


def test_labels_from_masks_are_the_classes_of_the_whole_mask_and_the_mask_is_dropped():
    full = SyntheticDataset(style='target', num_samples=3, seed=5, size=(32, 64))
    crop = [dict(type='RandomCrop', height=8, width=8)]
    weak = SyntheticDataset(
        style='target',
        num_samples=3,
        seed=5,
        size=(32, 64),
        pipeline=crop,
        with_label=False,
        image_labels='from_mask',
    )
    for i in range(3):
        gt = full[i]['data_samples']['gt_sem_seg']
        sample = weak[i]['data_samples']
        ids = gt.unique()
        assert sample['img_labels'].tolist() == ids[ids != 255].tolist()  # before the crop
        assert 'gt_sem_seg' not in sample
    both = SyntheticDataset(
        style='target', num_samples=1, seed=5, size=(32, 64), image_labels='from_mask'
    )
    assert 'gt_sem_seg' in both[0]['data_samples']  # with_label=True keeps the mask


def test_voc_layout_image_labels_from_segmentation_masks(tmp_path):
    root = tmp_path / 'VOC2012'
    for d in ('JPEGImages', 'SegmentationClass', 'ImageSets/Segmentation'):
        (root / d).mkdir(parents=True)
    ids = ['2007_000032', '2007_000039']
    classes = [(0, 1, 255), (0, 15)]
    for name, cls in zip(ids, classes):
        Image.fromarray(np.full((10, 12, 3), 128, np.uint8)).save(
            root / 'JPEGImages' / f'{name}.jpg'
        )
        mask = np.zeros((10, 12), np.uint8)
        for k, c in enumerate(cls):
            mask[k * 3 :] = c
        lbl = Image.fromarray(mask, mode='P')
        lbl.putpalette([v for i in range(256) for v in (i, i, i)])  # palette PNG, as VOC's
        lbl.save(root / 'SegmentationClass' / f'{name}.png')
    (root / 'ImageSets/Segmentation/train.txt').write_text('\n'.join(ids) + '\n')
    ds = VOCDataset(data_root=str(root), split='train', with_label=False, image_labels='from_mask')
    assert ds.protocol.num_classes == 21
    assert ds[0]['data_samples']['img_labels'].tolist() == [0, 1]  # 255 (boundary) ignored
    assert ds[1]['data_samples']['img_labels'].tolist() == [0, 15]
    assert 'gt_sem_seg' not in ds[0]['data_samples']
    with pytest.raises(FileNotFoundError, match='VOC id list'):
        VOCDataset(data_root=str(root), split='val')


def test_image_labels_reach_the_step_context():
    weak = dict(
        type='SyntheticDataset',
        style='target',
        num_samples=2,
        seed=0,
        size=(32, 64),
        with_label=False,
        image_labels='from_mask',
    )
    ds = MultiBranchDataset(dict(weak=weak))
    batch = uda_collate([ds[(0,)], ds[(1,)]])
    model = MODELS.build(
        dict(
            type='Adapter',
            segmentor=dict(type='ToySegmentor'),
            terms=dict(cam=dict(type='SingleStageCAM', branch='weak')),
        )
    )
    data = model.data_preprocessor(batch, True)
    ctx = model.make_context(data['inputs'], data['data_samples'], 0)
    multi_hot = ctx.image_labels('weak')
    for i in range(2):
        expected = torch.zeros(19)
        expected[ds[(i,)]['weak']['data_samples']['img_labels']] = 1
        assert torch.equal(multi_hot[i], expected)


def test_labels_from_cropped_masks_are_the_classes_of_the_crop():
    crop = [dict(type='RandomCrop', height=8, width=8)]
    kw = dict(style='target', num_samples=4, seed=5, size=(32, 64), pipeline=crop)
    both = SyntheticDataset(image_labels='from_cropped_mask', **kw)
    for i in range(4):
        sample = both[i]['data_samples']
        ids = sample['gt_sem_seg'].unique()
        assert sample['img_labels'].tolist() == ids[ids != 255].tolist()
    weak = SyntheticDataset(with_label=False, image_labels='from_cropped_mask', **kw)
    assert 'gt_sem_seg' not in weak[0]['data_samples']
