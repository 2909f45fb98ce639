"""Depth of each encoder parameter: the stage index that freezing and layer-wise lr decay use.

Self-supervised encoders are fine-tuned with their early stages frozen (mmseg ResNet
``frozen_stages``) or with a learning rate that shrinks with depth (BEiT / MAE layer-wise decay).
Both need one answer to "which stage is this parameter in?", for every smp and timm encoder.
Names carry it: ViTs number their ``blocks.i``; ResNets ``layer1..4``; MiT ``block1..4`` /
``patch_embed1..4`` / ``norm1..4``; timm hierarchical models ``stages.i``; EfficientNets
``blocks.i`` / ``_blocks.i``; VGG ``features.i``. So the stage of a parameter is read from its
name, and parameters named before the first numbered stage (stem, patch and position
embeddings, class token) are stage 0, those after the last (a final norm) belong to the top,
``num_stages``, with the decoder.
"""

from __future__ import annotations

import re
from typing import Optional

import torch.nn as nn

# 0-based containers: blocks.0 is stage 1 (stage 0 is the stem / embeddings).
_ZERO_BASED = re.compile(r'(?:^|\.)_?(?:blocks|stages|layers|features)\.(\d+)\.')
# 1-based names: torchvision ResNet layer1..4, MiT block1..4 / patch_embed1..4 / norm1..4.
_ONE_BASED = re.compile(r'(?:^|\.)(?:layer|block|patch_embed|norm)(\d+)\.')


def _numbered(name: str) -> Optional[int]:
    m = _ZERO_BASED.search(name)
    if m is not None:
        return int(m.group(1)) + 1
    m = _ONE_BASED.search(name)
    if m is not None:
        return int(m.group(1))
    return None


def encoder_stage_ids(encoder: nn.Module) -> tuple[dict[str, int], int]:
    """Stage index of each parameter of ``encoder`` and the number of encoder stages.

    Returns ``(ids, num_stages)``: ``ids[name]`` in ``0 .. num_stages`` (``name`` as in
    ``encoder.named_parameters()``). Stage 0 is everything before the first numbered stage
    (stem, patch / position embeddings, class and register tokens); a numbered stage ``i`` is
    ``blocks.{i-1}`` or ``layer{i}``; parameters after the last numbered stage (a ViT's final
    norm) get ``num_stages``, the depth of the decoder. For a ViT of depth 12 this is BEiT's
    ``get_num_layer_for_vit`` (microsoft/unilm beit/optim_factory.py; facebookresearch/mae
    util/lr_decay.py ``get_layer_id_for_vit``): embeddings 0, block i -> i + 1, the rest 13.

    Raises:
        ValueError: No parameter name holds a stage number (an encoder whose names this
            module cannot read); freeze it by name patterns instead.
    """
    names = [n for n, _ in encoder.named_parameters()]
    numbered = {n: _numbered(n) for n in names}
    found = [i for i in numbered.values() if i is not None]
    if not found:
        raise ValueError(
            f'Cannot tell the stages of encoder {type(encoder).__name__}: none of its '
            f'parameter names ({names[:3]} ...) holds a stage number (blocks.i, layer<i>, '
            'stages.i). Freeze it with freeze=dict(patterns=[...]) instead, and set no '
            'layer_decay.'
        )
    top = max(found) + 1
    ids: dict[str, int] = {}
    seen_stage = False
    for n in names:
        i = numbered[n]
        if i is not None:
            seen_stage = True
            ids[n] = i
        else:
            ids[n] = top if seen_stage else 0
    return ids, top
