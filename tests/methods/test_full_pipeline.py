"""The full pipeline config (SourceCE + FeatureAdversarial + SAC + ClassMix + MIC): every
term trains in one two-phase step; SAC's teacher and DACS's (named teachers) run once each per
step."""

import math
import os

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

import uda.engine  # noqa: F401  (registers AdapterOptimWrapperConstructor)
from tests.conftest import toy_batch
from uda.registry import MODELS

ROOT = os.path.join(os.path.dirname(__file__), '..', '..')
LEAF = 'configs/full_pipeline/full-pipeline_unet-resnet18_400_synthetic-96x192.py'
TERM_LOSSES = {
    'src': 'src.loss_ce',
    'sac': 'sac.loss',
    'mix': 'mix.loss_ce',
    'mic': 'mic.loss_ce',
}


@pytest.fixture
def at_iteration():
    """Set the iteration the Adapter reads from the MessageHub; restore it afterwards."""
    hub = MessageHub.get_current_instance()
    before = hub.get_info('iter')
    yield lambda it: hub.update_info('iter', it)
    hub.update_info('iter', before)


def _leaf_model_and_wrappers():
    cfg = Config.fromfile(os.path.join(ROOT, LEAF))
    model_cfg = cfg.model.to_dict()
    model_cfg['segmentor'] = dict(type='ToySegmentor', num_classes=19)
    model_cfg['data_preprocessor']['size_divisor'] = 1
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('uda'):
        model = MODELS.build(model_cfg)
        # The leaf's optim_wrapper names AdapterOptimWrapperConstructor: one wrapper per phase.
        wrappers = build_optim_wrapper(model, cfg.optim_wrapper)
    assert sorted(wrappers.keys()) == ['discriminators', 'student']
    model.train()
    return cfg, model, wrappers


def _snapshot(module):
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def test_full_pipeline_leaf_composes_the_method_bases_by_name():
    cfg = Config.fromfile(os.path.join(ROOT, LEAF))
    dacs = Config.fromfile(os.path.join(ROOT, 'configs/_base_/methods/dacs.py'))
    terms = cfg.model.terms
    assert [terms[k].type for k in ('src', 'feat', 'sac', 'mix', 'mic')] == [
        'SourceCE',
        'FeatureAdversarial',
        'SACSelfTraining',
        'ClassMix',
        'MaskedConsistency',
    ]
    # ClassMix and MIC read the one quality labeller, which reads DACS's teacher with DACS's
    # EMA settings; SAC's labeller reads SAC's demo teacher.
    assert terms.mix.labeller == terms.mic.labeller == 'teacher_quality'
    assert cfg.model.teacher == dict(momentum=0.99, interval=1, start_iter=200)
    assert cfg.model.labellers.teacher_quality.source == 'teachers.dacs'
    assert cfg.model.teachers.dacs == dict(dacs.dacs_teacher, start_iter=200)
    # The method's numbers, not copies: ClassMix as in DACS, MIC as in MIC on DACS.
    mic = Config.fromfile(os.path.join(ROOT, 'configs/_base_/methods/dacs_mic.py')).model
    assert terms.mix == dacs.class_mix == mic.terms.mix
    margins = ('ignore_top', 'ignore_bottom')  # 0 on the small synthetic scenes
    own = ('source',) + margins  # its own teacher; 0 margins on the small scenes
    assert {k: v for k, v in cfg.model.labellers.teacher_quality.items() if k not in own} == {
        k: v for k, v in dacs.teacher_quality.items() if k not in own
    }
    assert {k: v for k, v in terms.mic.items() if k != 'block_size'} == {
        k: v for k, v in mic.terms.mic.items() if k != 'block_size'
    }
    assert cfg.model.labellers.teacher_quality.threshold == 0.968
    assert cfg.default_hooks.teacher == dict(type='EMATeacherHook') and 'custom_hooks' not in cfg


def test_full_pipeline_trains_every_term_with_one_teacher_forward_per_labeller(at_iteration):
    cfg, model, wrappers = _leaf_model_and_wrappers()
    calls = []
    model.teacher.net.register_forward_hook(lambda *args: calls.append('sac'))
    model.teachers['dacs'].net.register_forward_hook(lambda *args: calls.append('dacs'))
    assert model.phases['mix'] == model.phases['sac'] == (cfg.model.teacher.start_iter, None)
    disc = _snapshot(model.terms['feat'])
    assert disc, 'FeatureAdversarial has no discriminator parameters'
    # Before the teacher starts (warm-up): source CE and feature alignment only.
    at_iteration(cfg.model.teacher.start_iter - 1)
    log_vars = model.train_step(toy_batch(seed=0), wrappers)
    assert calls == [] and not any(
        k in log_vars for k in TERM_LOSSES.values() if k != 'src.loss_ce'
    )
    for teacher in model.momentum_teachers().values():
        teacher.init_from(model.student)  # what EMATeacherHook does at start_iter
    for step in range(2):
        at_iteration(cfg.model.teacher.start_iter + step)
        calls.clear()
        log_vars = model.train_step(toy_batch(seed=step + 1), wrappers)
        # SAC's teacher for its views, DACS's for the quality labeller ClassMix and MIC share.
        assert sorted(calls) == ['dacs', 'sac'], calls
        for name, key in TERM_LOSSES.items():
            assert key in log_vars and math.isfinite(float(log_vars[key])), name
        feat = [k for k in log_vars if k.startswith('feat.') and 'loss' in k]
        assert feat and all(math.isfinite(float(log_vars[k])) for k in feat), sorted(log_vars)
    changed = [n for n, p in model.terms['feat'].named_parameters() if not torch.equal(p, disc[n])]
    assert changed, 'the discriminators did not train'
    assert all(p.grad is None for t in model.momentum_teachers().values() for p in t.parameters())
