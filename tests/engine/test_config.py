"""Every config loads and builds; unknown --cfg-options keys are rejected."""

import glob
import os
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

from uda.engine.config import ConfigError, check_cfg_options, load_config
from uda.models.segmentor import architecture_only
from uda.registry import DATASETS, EVALUATOR, METRICS, MODELS

ROOT = os.path.join(os.path.dirname(__file__), '..', '..')
# Segmentation / adaptation leaves; configs/pretrain (tools/pretrain.py, no terms, no
# evaluator) are checked by tests/pretrain/test_configs.py.
LEAVES = sorted(
    p
    for p in glob.glob(os.path.join(ROOT, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in p and f'{os.sep}pretrain{os.sep}' not in p
)
BASES = sorted(glob.glob(os.path.join(ROOT, 'configs', '_base_', '**', '*.py'), recursive=True))


def _types(node, found):
    if isinstance(node, dict):
        if isinstance(node.get('type'), str):
            found.add(node['type'])
        for v in node.values():
            _types(v, found)
    elif isinstance(node, (list, tuple)):
        for v in node:
            _types(v, found)
    return found


@pytest.mark.parametrize('path', BASES, ids=lambda p: os.path.relpath(p, ROOT))
def test_base_config_loads(path):
    Config.fromfile(path)


@pytest.mark.parametrize('path', LEAVES, ids=lambda p: os.path.relpath(p, ROOT))
def test_leaf_config_builds_with_toy_segmentor(path):
    cfg = Config.fromfile(path)
    model_cfg = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else dict(cfg.model)
    model_cfg['segmentor'] = dict(
        type='ToySegmentor',
        num_classes=model_cfg['segmentor'].get('num_classes', 19),
        # Single-stage CAM with a background class needs the constant background logit.
        constant_logit=next(
            (
                i
                for i in (model_cfg['segmentor'].get('insertions') or {}).values()
                if i['type'] == 'ConstantLogit'
            ),
            None,
        ),
    )
    with DefaultScope.overwrite_default_scope('uda'):
        model = MODELS.build(model_cfg)
        assert model.terms
        # A metric, or an evaluator holding one (DomainEvaluator: one per validation domain).
        (EVALUATOR if 'metrics' in cfg.val_evaluator else METRICS).build(cfg.val_evaluator)
        # Every `type` in the dataloaders names a registered class.
        for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            for t in _types(cfg.get(key, {}), set()):
                assert (
                    t in DATASETS.available()
                    or t
                    in (
                        'MultiBranchInfiniteSampler',
                        'DefaultSampler',
                        'InfiniteSampler',
                        'uda_collate',
                        'default_collate',
                        'pseudo_collate',
                    )
                    or t[0].isupper()
                ), t


@pytest.mark.parametrize('path', LEAVES, ids=lambda p: os.path.relpath(p, ROOT))
def test_leaf_config_builds_its_network_and_optimisers(path):
    """The config's own segmentor (aux heads, encoder stages read by terms) with
    encoder_weights=None and no init file (architecture_only), on the meta device (no memory, no
    initialisation; MiT on the CPU), and its optimisers; every paramwise ``custom_keys`` entry
    must name parameters of the student."""
    cfg = Config.fromfile(path)
    model_cfg = cfg.model.to_dict()
    model_cfg['segmentor'] = architecture_only(model_cfg['segmentor'])
    # smp's MiT encoders call .item() while building (drop-path rates), which the meta device
    # cannot do: those are built on the CPU (MiT-B5: a few seconds).
    device = 'cpu' if model_cfg['segmentor'].get('encoder_name', '').startswith('mit_') else 'meta'
    # Test-time configs hold their optimiser in the loop's settings (test_cfg.optim_wrapper);
    # those that train nothing (source, BN-adapt) have none.
    optim = (
        cfg.get('optim_wrapper')
        or (cfg.get('test_cfg') or {}).get('optim_wrapper')
        or dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0))
    )
    with DefaultScope.overwrite_default_scope('uda'), torch.device(device):
        model = MODELS.build(model_cfg)
        wrapper = build_optim_wrapper(model, optim)
    names = [n for n, _ in model.student.named_parameters()]
    for key in (optim.get('paramwise_cfg') or {}).get('custom_keys', {}):
        assert any(key in n for n in names), f'custom_keys {key!r} matches no student parameter'
    declared = [n for n, mods in model.declared_optimisers().items() if mods and n != 'student']
    assert sorted(getattr(wrapper, 'optim_wrappers', {}).keys() - {'student'}) == sorted(declared)


@pytest.mark.parametrize('path', LEAVES, ids=lambda p: os.path.relpath(p, ROOT))
def test_leaf_config_names_its_terms(path):
    """Terms are a dict by name (merged by key, addressed by --cfg-options), never a list
    spliced by index."""
    cfg = Config.fromfile(path)
    assert isinstance(cfg.model.terms, dict) and cfg.model.terms
    with open(path) as f:
        assert 'terms[' not in f.read()


def test_cfg_options_address_a_term_by_name():
    path = os.path.join(ROOT, 'configs/demo/sac_unet-resnet18_400_synthetic-96x192.py')
    cfg = Config.fromfile(path)
    check_cfg_options(cfg, {'model.terms.sac.weight': 2.0}, path)
    cfg.merge_from_dict({'model.terms.sac.weight': 2.0})
    assert cfg.model.terms.sac.weight == 2.0 and cfg.model.terms.sac.type == 'SACSelfTraining'
    assert cfg.model.labellers.sac.num_images == 2  # the leaf's change merged into the base


def _terms(path):
    return {t['type']: t for t in Config.fromfile(os.path.join(ROOT, path)).model.terms.values()}


def test_feature_adversarial_numbers_agree_across_configs():
    """The combined configs add the FeatureAdversarial term of the method, not a copy of it."""
    method = Config.fromfile(
        os.path.join(ROOT, 'configs/_base_/methods/feature_adversarial.py')
    ).feature_adversarial
    leaf = 'configs/feature_adversarial/feature-adversarial_unet-resnet18_400_synthetic-96x192.py'
    assert _terms(leaf)['FeatureAdversarial'] == method
    base = 'configs/_base_/methods/feature-adversarial_sac.py'
    for path in (
        base,
        'configs/sac/feature-adversarial-sac_unet-resnet18_400_synthetic-96x192.py',
        'configs/sac/feature-adversarial-sac_deeplabv2-resnet101_40k_gta2cityscapes-512x512.py',
    ):
        assert _terms(path)['FeatureAdversarial'] == method, path
    # The synthetic leaf is the SAC demo plus the feature term, in the base's order.
    demo = Config.fromfile(
        os.path.join(ROOT, 'configs/demo/sac_unet-resnet18_400_synthetic-96x192.py')
    ).model
    leaf = Config.fromfile(
        os.path.join(
            ROOT, 'configs/sac/feature-adversarial-sac_unet-resnet18_400_synthetic-96x192.py'
        )
    ).model
    assert {k: t for k, t in leaf.terms.items() if k != 'feat'} == demo.terms
    assert leaf.teacher == demo.teacher and leaf.labellers == demo.labellers
    assert list(leaf.terms) == list(Config.fromfile(os.path.join(ROOT, base)).model.terms)


def test_unknown_cfg_option_key_is_rejected():
    cfg = Config(dict(train_cfg=dict(max_iters=1), model=dict(segmentor=dict(type='X'))))
    with pytest.raises(KeyError, match=r"'trian_cfg' is not a key"):
        check_cfg_options(cfg, {'trian_cfg.max_iters': 3}, 'c.py')
    with pytest.raises(KeyError, match=r"'segmentr' is not under model"):
        check_cfg_options(cfg, {'model.segmentr.type': 'Y'}, 'c.py')
    check_cfg_options(cfg, {'model.segmentor.aux_head': 1, 'train_cfg.max_iters': 2}, 'c.py')


def test_cfg_options_may_add_a_dict_argument_the_class_takes():
    """``model.segmentor.freeze.encoder=True``: SMPSegmentor takes ``freeze``; a misspelt
    argument is still refused, and so is paramwise_cfg outside an optimiser wrapper."""
    cfg = Config(
        dict(
            model=dict(segmentor=dict(type='SMPSegmentor')),
            optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1)),
        )
    )
    with DefaultScope.overwrite_default_scope('uda'):
        check_cfg_options(
            cfg,
            {
                'model.segmentor.freeze.encoder': True,
                'model.segmentor.encoder_checkpoint.file': 'x.pth',
                'optim_wrapper.paramwise_cfg.layer_decay.rate': 0.65,
            },
            'c.py',
        )
        with pytest.raises(KeyError, match="'freez' is not under model.segmentor"):
            check_cfg_options(cfg, {'model.segmentor.freez.encoder': True}, 'c.py')
        with pytest.raises(KeyError, match="'paramwise_cfg' is not under model"):
            check_cfg_options(cfg, {'model.paramwise_cfg.x.y': 1}, 'c.py')


def test_missing_config_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='Config file not found'):
        load_config(str(tmp_path / 'nope.py'))


def test_one_default_hooks_block_that_schedules_and_leaves_adjust():
    """The hooks are declared once (default_runtime.py); every other config adjusts fields of
    it, and every leaf gets it through its schedule."""
    declaring = []
    for path in BASES + LEAVES:
        with open(path) as f:
            text = f.read()
        if 'default_hooks' in text and re.search(r'default_hooks\s*=\s*dict\([^#]*?type=', text):
            declaring.append(os.path.relpath(path, ROOT))
    assert declaring == [os.path.join('configs', '_base_', 'default_runtime.py')]
    for path in LEAVES:
        hooks = Config.fromfile(path).default_hooks
        assert hooks.rng_state.type == 'RNGStateHook' and hooks.cpu_threads.num_threads == 1


def test_runtime_listed_beside_a_schedule_is_one_clear_error(tmp_path):
    base = os.path.abspath(os.path.join(ROOT, 'configs', '_base_'))
    path = tmp_path / 'old_style.py'
    path.write_text(
        f"_base_ = ['{base}/default_runtime.py', '{base}/schedules/adamw_poly_400.py']\n"
    )
    with pytest.raises(ConfigError, match="remove '../_base_/default_runtime.py' from _base_"):
        load_config(str(path))
    other = tmp_path / 'two_models.py'
    (tmp_path / 'a.py').write_text('model = dict(type="A")\n')
    (tmp_path / 'b.py').write_text('model = dict(type="B")\n')
    other.write_text("_base_ = ['./a.py', './b.py']\n")
    with pytest.raises(ConfigError, match=r"two_models.py: two of its bases define .*'model'"):
        load_config(str(other))
