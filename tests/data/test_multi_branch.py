import itertools

import pytest
import torch

from uda.data import MultiBranchDataset, MultiBranchInfiniteSampler, uda_collate
from uda.data.pipelines import build_pipeline


def _ds(n_src=3, n_tgt=5):
    return MultiBranchDataset(
        branches=dict(
            source=dict(type='SyntheticDataset', style='source', num_samples=n_src, size=(16, 32)),
            target=dict(
                type='SyntheticDataset',
                style='target',
                num_samples=n_tgt,
                size=(16, 32),
                with_label=False,
            ),
        )
    )


def test_branches_are_drawn_independently_and_cover_each_dataset():
    sampler = MultiBranchInfiniteSampler(_ds(), shuffle=True, seed=0)
    idx = list(itertools.islice(iter(sampler), 15))
    src, tgt = [i for i, _ in idx], [j for _, j in idx]
    # Each branch is a sequence of full permutations of its own dataset.
    assert sorted(src[:3]) == [0, 1, 2] and sorted(src[3:6]) == [0, 1, 2]
    assert sorted(tgt[:5]) == [0, 1, 2, 3, 4] and sorted(tgt[5:10]) == [0, 1, 2, 3, 4]
    again = list(itertools.islice(iter(MultiBranchInfiniteSampler(_ds(), seed=0)), 15))
    assert again == idx
    other = list(itertools.islice(iter(MultiBranchInfiniteSampler(_ds(), seed=1)), 15))
    assert other != idx


def test_ranks_get_disjoint_shards(monkeypatch):
    streams = []
    for rank in range(2):
        monkeypatch.setattr('uda.data.multi_branch.get_dist_info', lambda r=rank: (r, 2))
        s = MultiBranchInfiniteSampler(_ds(4, 4), shuffle=True, seed=3)
        streams.append(list(itertools.islice(iter(s), 2)))
    src = [i for st in streams for i, _ in st]
    assert sorted(src) == [0, 1, 2, 3]


def test_dataset_and_collate_give_branch_batches():
    ds = _ds()
    batch = uda_collate([ds[(0, 1)], ds[(2, 4)]])
    assert set(batch) == {'source', 'target'}
    assert len(batch['source']['inputs']) == 2 and batch['source']['inputs'][0].dtype == torch.uint8
    assert 'gt_sem_seg' in batch['source']['data_samples'][0]
    assert 'gt_sem_seg' not in batch['target']['data_samples'][0]


def test_pipeline_keeps_mask_aligned_and_pads_with_ignore():
    import numpy as np

    pipe = build_pipeline(
        [
            dict(
                type='PadIfNeeded', min_height=8, min_width=8, border_mode=0, fill=0, fill_mask=255
            ),
            dict(type='HorizontalFlip', p=1.0),
        ]
    )
    img = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    mask = np.tile(np.arange(6, dtype=np.uint8), (4, 1))
    out = pipe(image=img, mask=mask)
    assert out['image'].shape == (8, 8, 3) and out['mask'].shape == (8, 8)
    assert (out['mask'] == 255).sum() == 64 - 24
    # flipped: mask columns reversed where the image is
    rows = out['mask'][(out['mask'] != 255).any(1)]
    cols = rows[:, (rows != 255).any(0)]
    assert cols[0].tolist() == [5, 4, 3, 2, 1, 0]


def test_pipeline_bad_argument_names_the_transform():
    with pytest.raises(ValueError, match='RandomCrop'):
        build_pipeline([dict(type='RandomCrop', hieght=4, width=4)])


def _views_ds(views=None, **kw):
    views = (
        views
        if views is not None
        else dict(
            weak=[], strong1=[dict(type='InvertImg', p=1.0)], strong2=[dict(type='ToGray', p=1.0)]
        )
    )
    return MultiBranchDataset(
        branches=dict(
            labeled=dict(type='SyntheticDataset', style='source', num_samples=3, size=(16, 32)),
            unlabeled=dict(
                dataset=dict(
                    type='SyntheticDataset', style='target', num_samples=5, size=(16, 32), **kw
                ),
                views=views,
            ),
        )
    )


def test_views_of_one_branch_show_the_same_image():
    ds = _views_ds()
    assert ds.names == ['labeled', 'unlabeled']
    assert ds.batch_branches == [
        'labeled',
        'unlabeled.weak',
        'unlabeled.strong1',
        'unlabeled.strong2',
    ]
    s = ds[(1, 3)]
    assert list(s) == ds.batch_branches
    weak, inv, grey = (s[f'unlabeled.{v}'] for v in ('weak', 'strong1', 'strong2'))
    paths = {v['data_samples']['img_path'] for v in (weak, inv, grey)}
    assert paths == {'synthetic://target/0/3'}
    # The weak view is the base sample; the others differ by their own transforms only.
    assert torch.equal(weak['inputs'], ds.datasets['unlabeled'][3]['inputs'])
    assert torch.equal(inv['inputs'], 255 - weak['inputs'])
    assert torch.equal(grey['inputs'][0], grey['inputs'][1])
    assert torch.equal(weak['data_samples']['gt_sem_seg'], inv['data_samples']['gt_sem_seg'])
    # The sampler treats the branch as one: one index per sampling branch.
    idx = next(iter(MultiBranchInfiniteSampler(ds, seed=0)))
    assert len(idx) == 2
    batch = uda_collate([ds[(0, 1)], ds[(2, 4)]])
    assert set(batch) == set(ds.batch_branches)
    assert [d['img_path'] for d in batch['unlabeled.strong1']['data_samples']] == [
        d['img_path'] for d in batch['unlabeled.weak']['data_samples']
    ]


def test_views_reach_the_terms_through_the_step_context():
    """The preprocessor and the step context take the dotted view branches as they are."""
    from uda.registry import MODELS

    ds = _views_ds()
    batch = uda_collate([ds[(0, 1)], ds[(2, 4)]])
    model = MODELS.build(
        dict(
            type='Adapter',
            segmentor=dict(type='ToySegmentor'),
            data_preprocessor=dict(type='SegDataPreprocessor', size_divisor=1),
            terms=dict(src=dict(type='SourceCE', branch='labeled')),
        )
    )
    data = model.data_preprocessor(batch, True)
    ctx = model.make_context(data['inputs'], data['data_samples'])
    weak, inv = ctx.inputs('unlabeled.weak'), ctx.inputs('unlabeled.strong1')
    assert weak.shape == inv.shape and weak.shape[0] == 2
    assert torch.allclose(ctx.denormalize(inv), 255 - ctx.denormalize(weak), atol=1e-3)
    assert ctx.student('unlabeled.strong2')['logits'].shape[0] == 2


def test_random_views_shared_geometry_and_own_colour():
    # Base pipeline: a random crop shared by the views; views: independent colour jitter.
    ds = MultiBranchDataset(
        branches=dict(
            unlabeled=dict(
                dataset=dict(
                    type='SyntheticDataset',
                    style='target',
                    num_samples=2,
                    size=(16, 32),
                    pipeline=[dict(type='RandomCrop', height=8, width=8)],
                ),
                views=dict(
                    a=[dict(type='ColorJitter', p=1.0)], b=[dict(type='ColorJitter', p=1.0)]
                ),
            )
        )
    )
    s = ds[0]
    a, b = s['unlabeled.a'], s['unlabeled.b']
    assert a['inputs'].shape == (3, 8, 8)
    assert torch.equal(a['data_samples']['gt_sem_seg'], b['data_samples']['gt_sem_seg'])
    assert not torch.equal(a['inputs'], b['inputs'])  # each view draws its own jitter


def test_bad_view_config_names_the_branch_and_view():
    with pytest.raises(ValueError, match="branch 'unlabeled', view 'strong1'.*RandomCrp"):
        _views_ds(views=dict(weak=[], strong1=[dict(type='RandomCrp', height=4, width=4)]))
    with pytest.raises(ValueError, match="branch 'unlabeled'.*non-empty dict"):
        _views_ds(views=[dict(type='ToGray')])
    with pytest.raises(ValueError, match="branch 'unlabeled'.*without '.'"):
        _views_ds(views={'a.b': []})
    with pytest.raises(ValueError, match="branch 'unlabeled'.*dataset"):
        MultiBranchDataset(branches=dict(unlabeled=dict(type='SyntheticDataset', views={})))


def _semi_ds(n_lab=3, n_unl=5):
    unl = dict(type='SyntheticDataset', style='target', num_samples=n_unl, size=(16, 32))
    return MultiBranchDataset(
        branches=dict(
            labeled=dict(type='SyntheticDataset', style='target', num_samples=n_lab, size=(16, 32)),
            unlabeled=unl,
            unlabeled_mix=dict(unl),
        )
    )


def test_follow_gives_the_cutmix_partner_the_same_images(monkeypatch):
    """UniMatch's zip(loader_u, loader_u): partner i is unlabelled image i again (another
    crop); without `follow` the partner stream is independent."""
    follow = dict(unlabeled_mix='unlabeled')
    idx = list(
        itertools.islice(iter(MultiBranchInfiniteSampler(_semi_ds(), seed=0, follow=follow)), 12)
    )
    assert all(u == m for _, u, m in idx)
    plain = list(itertools.islice(iter(MultiBranchInfiniteSampler(_semi_ds(), seed=0)), 12))
    assert any(u != m for _, u, m in plain)
    # The leader's and the labelled stream are the ones without `follow`.
    assert [(lab, u) for lab, u, _ in idx] == [(lab, u) for lab, u, _ in plain]
    # Sharded across ranks, the partner still follows its rank's unlabelled index.
    monkeypatch.setattr('uda.data.multi_branch.get_dist_info', lambda: (1, 2))
    shard = MultiBranchInfiniteSampler(_semi_ds(), seed=0, follow=follow)
    assert all(u == m for _, u, m in itertools.islice(iter(shard), 8))


def test_follow_rejects_unknown_or_mismatched_branches():
    with pytest.raises(ValueError, match='unlabeled_max'):
        MultiBranchInfiniteSampler(_semi_ds(), follow=dict(unlabeled_max='unlabeled'))
    with pytest.raises(ValueError, match='same dataset'):
        MultiBranchInfiniteSampler(_semi_ds(), follow=dict(unlabeled_mix='labeled'))
