"""Training modes through the adapter's optimiser constructor: frozen parts receive no
gradient and do not move; layer-wise lr decay gives each encoder stage its lr."""

import pytest
import torch

from tests.conftest import toy_batch
from uda.engine import AdapterOptimWrapperConstructor
from uda.engine.optim_constructor import layer_decay_custom_keys
from uda.models.encoder_stages import encoder_stage_ids
from uda.registry import MODELS


def _adapter(**segmentor):
    return MODELS.build(
        dict(
            type='Adapter',
            segmentor=dict(type='SMPSegmentor', num_classes=19, **segmentor),
            data_preprocessor=dict(type='SegDataPreprocessor', size_divisor=32),
            terms=dict(src=dict(type='SourceCE')),
        )
    )


def _wrappers(model, lr=0.1, **paramwise):
    return AdapterOptimWrapperConstructor(
        dict(student=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=lr, momentum=0.9))),
        paramwise_cfg=paramwise or None,
    )(model)


@pytest.mark.parametrize(
    'freeze', [dict(encoder=True), dict(stages=2)], ids=['linear-probe', 'stages=2']
)
def test_frozen_parameters_get_no_gradient_and_do_not_move(freeze):
    model = _adapter(arch='Unet', encoder_name='resnet18', freeze=freeze)
    model.train()
    wrappers = _wrappers(model)  # would fail if a trainable parameter were in no optimiser
    frozen = {f'student.{n}' for n in model.student.frozen_names}
    assert frozen and all(n.startswith('student.net.encoder.') for n in frozen)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    stats = {n: b.clone() for n, b in model.named_buffers() if 'running_mean' in n}
    model.train_step(toy_batch(), wrappers)
    for n, p in model.named_parameters():
        if n in frozen:
            assert p.grad is None and torch.equal(p, before[n]), n
    moved = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert any('decoder' in n for n in moved) and any('segmentation_head' in n for n in moved)
    assert not (set(moved) & frozen)
    # BN statistics of frozen layers stay fixed (eval mode), trainable ones follow the batch
    frozen_bn = 'student.net.encoder.bn1.running_mean'
    assert torch.equal(dict(model.named_buffers())[frozen_bn], stats[frozen_bn])
    dec_bn = next(n for n in stats if 'decoder' in n)
    assert not torch.equal(dict(model.named_buffers())[dec_bn], stats[dec_bn])
    if 'stages' in freeze:  # layer3 trains
        assert 'student.net.encoder.layer3.0.conv1.weight' in moved


@pytest.mark.parametrize(
    'segmentor',
    [
        dict(arch='Unet', encoder_name='resnet18'),
        dict(
            arch='DPT',
            encoder_name='tu-vit_tiny_patch16_224',
            decoder_intermediate_channels=(8, 8, 8, 8),
            decoder_fusion_channels=8,
        ),
    ],
    ids=['resnet18', 'tu-vit'],
)
def test_layer_decay_lrs_follow_the_formula(segmentor):
    base, rate = 0.1, 0.5
    model = _adapter(**segmentor)
    wrappers = _wrappers(model, lr=base, layer_decay=dict(rate=rate))
    lr_of = {
        id(p): g['lr'] for g in wrappers['student'].optimizer.param_groups for p in g['params']
    }
    ids, num_stages = encoder_stage_ids(model.student.net.encoder)
    for n, p in model.student.net.encoder.named_parameters():
        assert lr_of[id(p)] == pytest.approx(base * rate ** (num_stages - ids[n])), n
    for p in [
        *model.student.net.decoder.parameters(),
        *model.student.net.segmentation_head.parameters(),
    ]:
        assert lr_of[id(p)] == pytest.approx(base)
    lrs = {lr_of[id(p)] for p in model.student.net.encoder.parameters()}
    assert min(lrs) == pytest.approx(base * rate**num_stages)  # stem / embeddings


def test_layer_decay_keeps_user_keys_and_checks_its_input():
    model = _adapter(arch='Unet', encoder_name='resnet18')
    keys = layer_decay_custom_keys(
        model.student, 0.5, custom_keys={'bn1': dict(decay_mult=0.0, lr_mult=2.0)}
    )
    # stem BN: stage 0 of 5 -> 0.5 ** 5, times the user's 2.0, keeping decay_mult
    assert keys['student.net.encoder.bn1.weight'] == dict(decay_mult=0.0, lr_mult=2.0 * 0.5**5)
    assert keys['bn1'] == dict(decay_mult=0.0, lr_mult=2.0)  # still applies outside the encoder
    with pytest.raises(ValueError, match='rate'):
        AdapterOptimWrapperConstructor(
            dict(student=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1))),
            paramwise_cfg=dict(layer_decay=dict(rate=0.5, num_layers=3)),
        )
    with pytest.raises(ValueError, match=r'\(0, 1\]'):
        layer_decay_custom_keys(model.student, 1.5)


def test_layer_decay_constructor_for_a_plain_optim_wrapper():
    """Configs with one OptimWrapper: constructor='LayerDecayOptimWrapperConstructor'."""
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope

    model = _adapter(arch='Unet', encoder_name='resnet18')
    with DefaultScope.overwrite_default_scope('uda'):
        wrapper = build_optim_wrapper(
            model,
            dict(
                type='OptimWrapper',
                optimizer=dict(type='AdamW', lr=1e-3),
                constructor='LayerDecayOptimWrapperConstructor',
                paramwise_cfg=dict(layer_decay=dict(rate=0.5)),
            ),
        )
    lr_of = {id(p): g['lr'] for g in wrapper.optimizer.param_groups for p in g['params']}
    enc = model.student.net.encoder
    assert lr_of[id(enc.conv1.weight)] == pytest.approx(1e-3 * 0.5**5)
    assert lr_of[id(enc.layer4[0].conv1.weight)] == pytest.approx(1e-3 * 0.5)
    assert lr_of[id(model.student.net.segmentation_head[0].weight)] == pytest.approx(1e-3)
