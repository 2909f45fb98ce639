import numpy as np
import pytest

from uda.data import ListFileDataset, SyntheticDataset
from uda.data.synthetic import SYNTHETIC_CLASS_IDS, main, render_scene


def test_deterministic_per_seed_index_style():
    a_img, a_lbl = render_scene(3, 'target', seed=5, size=(48, 96))
    b_img, b_lbl = render_scene(3, 'target', seed=5, size=(48, 96))
    assert np.array_equal(a_img, b_img) and np.array_equal(a_lbl, b_lbl)
    c_img, _ = render_scene(4, 'target', seed=5, size=(48, 96))
    d_img, _ = render_scene(3, 'target', seed=6, size=(48, 96))
    e_img, _ = render_scene(3, 'source', seed=5, size=(48, 96))
    assert not np.array_equal(a_img, c_img)
    assert not np.array_equal(a_img, d_img)
    assert not np.array_equal(a_img, e_img)


@pytest.mark.parametrize('style', ['source', 'target'])
def test_class_coverage_and_label_space(style):
    seen = set()
    for i in range(40):
        img, lbl = render_scene(i, style, seed=0, size=(96, 192))
        assert img.dtype == np.uint8 and img.shape == (96, 192, 3)
        assert lbl.dtype == np.uint8 and lbl.shape == (96, 192)
        seen |= set(np.unique(lbl).tolist())
    assert seen <= set(SYNTHETIC_CLASS_IDS)
    assert seen == set(SYNTHETIC_CLASS_IDS), f'missing {set(SYNTHETIC_CLASS_IDS) - seen}'


def test_styles_differ_in_appearance_statistics():
    def stats(style):
        imgs = [render_scene(i, style, 0, (64, 128))[0].astype(float) for i in range(20)]
        rough = np.mean([np.abs(np.diff(im, axis=1)).mean() for im in imgs])
        return np.mean(imgs), rough

    (src_mean, src_rough), (tgt_mean, tgt_rough) = stats('source'), stats('target')
    assert tgt_mean < src_mean - 10  # darker, other illumination
    assert tgt_rough > src_rough  # textures and sensor noise


def test_cli_writes_a_list_file_dataset(tmp_path):
    main(['--out', str(tmp_path), '--style', 'source', '--num', '3', '--size', '32', '64'])
    ds = ListFileDataset(data_root=str(tmp_path), list_file='source.txt')
    assert len(ds) == 3
    sample = ds[1]
    img, lbl = render_scene(1, 'source', 0, (32, 64))
    assert np.array_equal(sample['inputs'].permute(1, 2, 0).numpy(), img)
    assert np.array_equal(sample['data_samples']['gt_sem_seg'].numpy(), lbl)


def test_dataset_matches_renderer_and_unlabelled_mode():
    ds = SyntheticDataset(style='target', num_samples=2, seed=1, size=(32, 64), with_label=False)
    s = ds[0]
    assert 'gt_sem_seg' not in s['data_samples']
    assert s['inputs'].shape == (3, 32, 64)
    with pytest.raises(ValueError, match='style'):
        SyntheticDataset(style='real')
