"""Each bad input fails with one clear error that names the file or key and the fix."""

import numpy as np
import pytest
from PIL import Image

from uda.data import ListFileDataset, MultiBranchDataset, SyntheticDataset, build_pipeline


def _write(root, name, arr):
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


@pytest.fixture
def tree(tmp_path):
    _write(tmp_path, 'img/a.png', np.zeros((8, 10, 3), np.uint8))
    _write(tmp_path, 'lbl/a.png', np.zeros((8, 10), np.uint8))
    return tmp_path


def test_missing_list_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r'List file not found: .*nope\.txt.*data_root'):
        ListFileDataset(data_root=str(tmp_path), list_file='nope.txt')


def test_empty_list_file(tmp_path):
    (tmp_path / 'empty.txt').write_text('\n\n')
    with pytest.raises(ValueError, match=r'empty\.txt names no images'):
        ListFileDataset(data_root=str(tmp_path), list_file='empty.txt')


def test_missing_image(tree):
    (tree / 'l.txt').write_text('img/a.png lbl/a.png\nimg/missing.png lbl/a.png\n')
    with pytest.raises(FileNotFoundError, match=r'img/missing\.png.*data_root'):
        ListFileDataset(data_root=str(tree), list_file='l.txt')


def test_label_size_differs_from_image(tree):
    _write(tree, 'lbl/small.png', np.zeros((4, 10), np.uint8))
    (tree / 'l.txt').write_text('img/a.png lbl/small.png\n')
    ds = ListFileDataset(data_root=str(tree), list_file='l.txt')
    with pytest.raises(ValueError, match=r'small\.png is 10x4 but image .*a\.png is 10x8'):
        ds[0]


def test_label_size_checked_before_resize(tree):
    # A 300x200-style mismatch (here 5x4 on 10x8) must not be hidden by resizing both to one size.
    _write(tree, 'lbl/other.png', np.zeros((4, 5), np.uint8))
    (tree / 'l.txt').write_text('img/a.png lbl/other.png\n')
    ds = ListFileDataset(data_root=str(tree), list_file='l.txt', resize=(16, 20))
    with pytest.raises(ValueError, match=r'other\.png is 5x4 but image .*a\.png is 10x8.*before'):
        ds[0]
    # The pre-flight finds the same pair from the file headers, before any sample is drawn.
    with pytest.raises(ValueError, match=r'other\.png is 5x4 but image .*a\.png is 10x8'):
        ds.check_pair_sizes()
    # A matching pair still resizes (image bilinear, label nearest).
    (tree / 'l.txt').write_text('img/a.png lbl/a.png\n')
    ds = ListFileDataset(data_root=str(tree), list_file='l.txt', resize=(16, 20))
    assert ds[0]['data_samples']['gt_sem_seg'].shape == (16, 20)


def test_label_values_outside_class_map(tree):
    bad = np.zeros((8, 10), np.uint8)
    bad[0, 0] = 42
    _write(tree, 'lbl/bad.png', bad)
    (tree / 'l.txt').write_text('img/a.png lbl/bad.png\n')
    ds = ListFileDataset(data_root=str(tree), list_file='l.txt')
    with pytest.raises(ValueError, match=r'bad\.png has values \[42\].*label_map'):
        ds[0]
    # With a label map, unmapped raw values become ignore and mapped ones their train id.
    ds = ListFileDataset(data_root=str(tree), list_file='l.txt', label_map={0: 3})
    gt = ds[0]['data_samples']['gt_sem_seg']
    assert gt[0, 0] == 255 and (gt.flatten()[1:] == 3).all()


def test_truncated_image(tree):
    data = (tree / 'img/a.png').read_bytes()
    (tree / 'img/trunc.png').write_bytes(data[:40])
    (tree / 'l.txt').write_text('img/trunc.png lbl/a.png\n')
    ds = ListFileDataset(data_root=str(tree), list_file='l.txt')
    with pytest.raises(OSError, match=r'Cannot read image .*trunc\.png'):
        ds[0]


def test_line_without_label_when_labels_required(tree):
    (tree / 'l.txt').write_text('img/a.png\n')
    with pytest.raises(ValueError, match=r'l\.txt:1: no label path.*with_label=False'):
        ListFileDataset(data_root=str(tree), list_file='l.txt')
    ds = ListFileDataset(data_root=str(tree), list_file='l.txt', with_label=False)
    assert 'gt_sem_seg' not in ds[0]['data_samples']


def test_empty_dataset_in_branches():
    with pytest.raises(ValueError, match='num_samples'):
        SyntheticDataset(num_samples=0)
    with pytest.raises(ValueError, match='at least one branch'):
        MultiBranchDataset(branches={})


def test_unknown_transform_type():
    with pytest.raises(KeyError, match=r"unknown transform type 'HorizontalFlipp'.*HorizontalFlip"):
        build_pipeline([dict(type='HorizontalFlipp')])


def test_unknown_protocol():
    with pytest.raises(KeyError, match=r"Unknown class protocol 'cityscape'.*cityscapes19"):
        SyntheticDataset(protocol='cityscape')


def test_preflight_checks_label_sizes_of_every_labelled_branch(tree):
    """tools/train.py's pre-flight (uda.engine.config.check_label_sizes) reads the headers of
    the labelled branches before the first iteration; unlabelled branches are skipped."""
    from types import SimpleNamespace

    from uda.data.multi_branch import MultiBranchDataset
    from uda.engine.config import check_label_sizes

    _write(tree, 'lbl/other.png', np.zeros((4, 5), np.uint8))
    (tree / 'bad.txt').write_text('img/a.png lbl/a.png\nimg/a.png lbl/other.png\n')
    (tree / 'ok.txt').write_text('img/a.png lbl/a.png\n')
    src = dict(type='ListFileDataset', data_root=str(tree), list_file='bad.txt')
    tgt = dict(type='ListFileDataset', data_root=str(tree), list_file='bad.txt', with_label=False)
    ds = MultiBranchDataset(branches=dict(source=src, target=tgt))

    def runner(dataset):
        loop = SimpleNamespace(dataloader=SimpleNamespace(dataset=dataset))
        return SimpleNamespace(train_loop=loop, val_loop=None)

    with pytest.raises(ValueError, match=r'other\.png is 5x4'):
        check_label_sizes(runner(ds))
    ds = MultiBranchDataset(branches=dict(source=dict(src, list_file='ok.txt'), target=tgt))
    check_label_sizes(runner(ds))  # the unlabelled target list is not read for labels
