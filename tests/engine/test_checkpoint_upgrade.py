"""Checkpoints of the positional-terms layout: refused with the fix, converted by the tool."""

import os
import sys

import pytest
import torch

from uda.engine.checkpoint import upgrade_state_dict
from uda.registry import MODELS

ROOT = os.path.join(os.path.dirname(__file__), '..', '..')
TERMS = dict(
    src=dict(type='SourceCE'),
    sac=dict(type='SACSelfTraining'),
    feat=dict(
        type='FeatureAdversarial',
        aux_weight=0,
        discriminator=dict(type='FeatureDiscriminator', channels=(4,)),
    ),
)


def _model():
    return MODELS.build(
        dict(
            type='Adapter',
            segmentor=dict(type='ToySegmentor'),
            teacher=dict(),
            labellers=dict(sac=dict(type='SACLabeller')),
            terms=TERMS,
        )
    )


def _legacy(state):
    """The same weights as the old layout wrote them: terms sorted by `order` (SAC first,
    then src, feat), SAC's prior in its term, the teacher's keys unprefixed."""
    old = {}
    for k, v in state.items():
        if k.startswith('labellers.sac.'):
            old['terms.0.' + k[len('labellers.sac.') :]] = v
        elif k.startswith('terms.feat.'):
            old['terms.2.' + k[len('terms.feat.') :]] = v
        elif k == 'teacher.ready':
            old['teacher_ready'] = v
        elif k == 'teacher.updates':
            continue
        elif k.startswith('teacher.net.'):
            old['teacher.' + k[len('teacher.net.') :]] = v
        else:
            old[k] = v
    return old


def test_mapping_restores_every_key():
    model = _model()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
        model.labellers['sac'].class_prior.uniform_()
    state = model.state_dict()
    old = _legacy(state)
    fresh = _model()
    with pytest.raises(KeyError, match='upgrade_checkpoint.py'):
        fresh.load_state_dict(old)
    new = upgrade_state_dict(old, TERMS)
    assert set(new) == set(state)
    fresh.load_state_dict(new, strict=True)
    for k, v in state.items():
        assert torch.equal(fresh.state_dict()[k], v), k


def test_tool_converts_a_file(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(ROOT)
    sys.path.insert(0, os.path.join(ROOT, 'tools'))
    from upgrade_checkpoint import main

    cfg = tmp_path / 'cfg.py'
    cfg.write_text(
        f"model = dict(type='Adapter', segmentor=dict(type='ToySegmentor'), "
        f"teacher=dict(), labellers=dict(sac=dict(type='SACLabeller')), "
        f'terms={TERMS!r})\n'
    )
    model = _model()
    torch.save(
        dict(state_dict=_legacy(model.state_dict()), meta=dict(iter=3)), tmp_path / 'old.pth'
    )
    main([str(cfg), str(tmp_path / 'old.pth'), str(tmp_path / 'new.pth')])
    ckpt = torch.load(tmp_path / 'new.pth', weights_only=False)
    assert ckpt['meta'] == dict(iter=3)
    _model().load_state_dict(ckpt['state_dict'], strict=True)
