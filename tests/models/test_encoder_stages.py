"""Stage ids of encoder parameters (freezing and layer-wise lr decay read them)."""

import pytest
import torch.nn as nn

from uda.models import SMPSegmentor
from uda.models.encoder_stages import encoder_stage_ids


def test_resnet_vit_and_mit_stages():
    ids, n = encoder_stage_ids(SMPSegmentor(encoder_name='resnet18').net.encoder)
    assert n == 5 and ids['conv1.weight'] == 0 and ids['bn1.weight'] == 0
    assert ids['layer1.0.conv1.weight'] == 1 and ids['layer4.1.bn2.bias'] == 4
    vit = SMPSegmentor(
        arch='DPT',
        encoder_name='tu-vit_tiny_patch16_224',
        decoder_fusion_channels=8,
        decoder_intermediate_channels=(8, 8, 8, 8),
    ).net.encoder
    ids, n = encoder_stage_ids(vit)
    # BEiT / MAE: embeddings 0, block i -> i + 1, depth + 1 layers
    assert n == 13
    assert (
        ids['model.cls_token']
        == ids['model.pos_embed']
        == ids['model.patch_embed.proj.weight']
        == 0
    )
    assert ids['model.blocks.0.norm1.weight'] == 1 and ids['model.blocks.11.mlp.fc2.bias'] == 12
    ids, n = encoder_stage_ids(SMPSegmentor(arch='Segformer', encoder_name='mit_b0').net.encoder)
    assert n == 5 and ids['patch_embed1.proj.weight'] == 1 and ids['norm4.weight'] == 4
    ids, n = encoder_stage_ids(SMPSegmentor(encoder_name='tu-resnet18').net.encoder)
    assert n == 5 and ids['model.conv1.weight'] == 0 and ids['model.layer3.0.conv1.weight'] == 3


def test_unreadable_names_are_a_clear_error():
    with pytest.raises(ValueError, match='patterns'):
        encoder_stage_ids(nn.Sequential(nn.Conv2d(3, 4, 1)))
