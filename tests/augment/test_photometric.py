"""Photometric augmentation (kornia): per-image parameters, seeding, presets."""

import pytest
import torch

from uda.augment.photometric import (
    PhotometricAugment,
    build_photometric,
    dacs_strong,
    relative_kernel,
    sac_noise,
    unimatch_strong,
)


def _images(k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(k, 3, 32, 32, generator=g)


def test_each_image_gets_its_own_parameters():
    # The same image repeated: any difference between the outputs comes from per-image draws.
    x = _images(1).expand(4, 3, 32, 32).contiguous()
    for aug in (
        PhotometricAugment(jitter=(0.4, 0.4, 0.4, 0.1)),
        PhotometricAugment(blur_sigma=(0.1, 2.0), blur_kernel=7),
    ):
        y = aug(x, generator_seed=0)
        assert all(not torch.allclose(y[0], y[i]) for i in range(1, 4))


def test_seed_reproducible_and_global_rng_untouched():
    x = _images()
    aug = unimatch_strong()
    state = torch.get_rng_state()
    a, b = aug(x, generator_seed=3), aug(x, generator_seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, b)
    assert not torch.allclose(a, aug(x, generator_seed=4))


@pytest.mark.parametrize('make', [sac_noise, dacs_strong, unimatch_strong])
def test_presets_keep_shape_and_range(make):
    x = _images(6)
    y = make()(x, generator_seed=1)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert y.min() >= 0 and y.max() <= 1
    assert not torch.allclose(y, x)


def test_probability_zero_is_identity():
    x = _images()
    aug = PhotometricAugment(
        jitter=(0.5, 0.5, 0.5, 0.25), jitter_p=0.0, grey_p=0.0, blur_sigma=(0.1, 2.0), blur_p=0.0
    )
    assert torch.equal(aug(x, generator_seed=0), x)


def test_greyscale_p1_gives_equal_channels():
    y = PhotometricAugment(grey_p=1.0)(_images())
    assert torch.allclose(y[:, 0], y[:, 1]) and torch.allclose(y[:, 1], y[:, 2])


def test_blur_reduces_variance_of_noise():
    x = _images()
    y = PhotometricAugment(blur_sigma=(1.0, 2.0), blur_kernel=9)(x, generator_seed=0)
    assert (y.var((1, 2, 3)) < 0.5 * x.var((1, 2, 3))).all()


def test_relative_kernel_follows_dacs():
    # floor(ceil(0.1 s) - 0.5 + ceil(0.1 s) % 2): 512 -> 52 -> 51, 1024 -> 103, 32 -> 4 -> 3.
    assert [relative_kernel(s) for s in (512, 1024, 32, 5)] == [51, 103, 3, 1]
    x = torch.zeros(2, 3, 32, 64)
    x[..., 16, 32] = 1.0  # one bright pixel: its blurred footprint is the kernel (3 x 7)
    y = PhotometricAugment(blur_sigma=(1.0, 1.0), blur_kernel='relative')(x)
    rows, cols = (y[0, 0] > 0).nonzero().unbind(1)
    assert (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) == (3, 7)


def test_bad_arguments_name_the_fix():
    with pytest.raises(ValueError, match='odd int'):
        PhotometricAugment(blur_sigma=(0.1, 1.0), blur_kernel=4)
    with pytest.raises(ValueError, match='order'):
        PhotometricAugment(order=('jitter', 'sharpen'))
    with pytest.raises(ValueError, match=r'\[K, 3, H, W\]'):
        PhotometricAugment(grey_p=1.0)(torch.rand(3, 8, 8))


def test_batch_coins_jitter_all_images_or_none():
    """DACS / MIC flip one jitter coin and one blur coin per batch (lhoyer/MIC dacs.py:331-339);
    the factors stay per image. coins='image' mixes jittered and plain images in a batch."""
    from uda.augment.photometric import PhotometricAugment

    x = torch.rand(8, 3, 8, 8)
    outcomes = {'batch': set(), 'image': set()}
    for coins in outcomes:
        aug = PhotometricAugment(jitter=(0.4, 0.4, 0.4, 0.1), jitter_p=0.5, coins=coins)
        for seed in range(12):
            y = aug(x, generator_seed=seed)
            changed = tuple(bool((a - b).abs().max() > 1e-6) for a, b in zip(x, y))
            outcomes[coins].add(changed)
            if coins == 'batch' and all(changed):
                # Factors per image: two jittered images differ from each other's jitter.
                assert not torch.allclose(y[0] - x[0], y[1] - x[1])
    assert outcomes['batch'] == {(True,) * 8, (False,) * 8}
    assert any(0 < sum(c) < 8 for c in outcomes['image'])
    blur = PhotometricAugment(blur_sigma=(1.0, 1.0), blur_p=0.5, blur_kernel=5, coins='batch')
    seen = {
        tuple(bool((a - b).abs().max() > 1e-6) for a, b in zip(x, blur(x, s))) for s in range(12)
    }
    assert seen == {(True,) * 8, (False,) * 8}


def test_dacs_and_mic_strong_views_use_batch_coins_in_the_paper_leaves():
    from mmengine.config import Config

    model = Config.fromfile('configs/mic/mic_unet-resnet18_400_synthetic-96x192.py').model
    for term in (model.terms.mix, model.terms.mic):
        assert build_photometric(term.photometric, 'test').coins == 'batch'


def test_build_photometric_takes_a_preset_with_overrides_or_the_arguments():
    x = _images()
    a = build_photometric(dict(preset='sac_noise'), 'test')
    b = sac_noise()
    assert torch.equal(a(x, generator_seed=3), b(x, generator_seed=3))
    off = build_photometric(dict(preset='unimatch_strong', jitter_p=0, grey_p=0, blur_p=0), 't')
    assert torch.equal(off(x), x)
    assert build_photometric(None, 'test') is None
    kw = build_photometric(dict(blur_sigma=[1.0, 1.0], blur_p=1.0, blur_kernel=5), 'test')
    assert not torch.equal(kw(x), x)  # a list from a config file is taken as the tuple
    with pytest.raises(KeyError, match=r"T\(photometric=...\): unknown preset 'nope'"):
        build_photometric(dict(preset='nope'), 'T(photometric=...)')
    with pytest.raises(TypeError, match='give one dict'):
        build_photometric('sac_noise', 'T(photometric=...)')  # type: ignore[arg-type]
    with pytest.raises(TypeError, match='keyword arguments of PhotometricAugment'):
        build_photometric(dict(preset='sac_noise', jiter=0.1), 'T(photometric=...)')


def test_terms_and_method_configs_use_the_presets():
    """Every term with a photometric view defaults to a preset of uda/augment/photometric.py,
    and every method base config names one."""
    import inspect
    from pathlib import Path

    from mmengine.config import Config

    from uda.augment.photometric import PRESETS
    from uda.registry import TERMS

    with_views = []
    for name in TERMS.available():
        params = inspect.signature(TERMS.get(name).__init__).parameters
        if 'photometric' in params:
            with_views.append(name)
            assert params['photometric'].default['preset'] in PRESETS, name
    assert {'ClassMix', 'MaskedConsistency', 'SACSelfTraining', 'UniMatch'} <= set(with_views)

    def photometric_cfgs(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == 'photometric' and value is not None:
                    yield value
                else:
                    yield from photometric_cfgs(value)
        elif isinstance(node, (list, tuple)):
            for v in node:
                yield from photometric_cfgs(v)

    found = 0
    for path in sorted(Path('configs/_base_/methods').glob('*.py')):
        for cfg in photometric_cfgs(Config.fromfile(str(path)).to_dict()):
            assert cfg.get('preset') in PRESETS, (path, cfg)
            found += 1
    assert found >= 8
