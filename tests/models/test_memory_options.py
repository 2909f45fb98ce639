"""Activation checkpointing of the encoder and frozen tensors shared with the teacher: the
memory options of issue 26 change memory only, never gradients, statistics or EMA results."""

import pytest
import torch
import torch.nn.functional as F

from uda.models import MomentumTeacher
from uda.models.checkpointing import enable_activation_checkpointing
from uda.models.segmentor import SMPSegmentor


def _pair(size=64, **kw):
    torch.manual_seed(0)
    plain = SMPSegmentor(num_classes=3, **kw)
    ckpt = SMPSegmentor(num_classes=3, activation_checkpointing=True, **kw)
    ckpt.load_state_dict(plain.state_dict())
    return plain, ckpt, torch.randn(2, 3, size, size)


def _step(net, x):
    torch.manual_seed(1)  # the same drop-path draws for both networks
    net.train()
    net.zero_grad()
    F.cross_entropy(net(x), torch.zeros(len(x), *x.shape[-2:], dtype=torch.long)).backward()
    return {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}


@pytest.mark.parametrize(
    'kw',
    [
        dict(arch='Unet', encoder_name='resnet18'),  # smp ResNet: stages
        dict(arch='Unet', encoder_name='tu-resnet18'),  # timm feature net with BatchNorm
        dict(arch='Segformer', encoder_name='mit_b0'),  # smp Mix Transformer: blocks
    ],
    ids=['smp-resnet', 'timm-resnet', 'mit'],
)
def test_checkpointing_keeps_gradients_and_batchnorm_statistics(kw):
    plain, ckpt, x = _pair(**kw)
    assert ckpt.checkpointed and not plain.checkpointed
    g_plain, g_ckpt = _step(plain, x), _step(ckpt, x)
    assert g_plain.keys() == g_ckpt.keys()
    for n in g_plain:
        assert torch.allclose(g_plain[n], g_ckpt[n], atol=1e-5, rtol=1e-4), n
    # The recomputation in the backward pass must not update the running statistics again.
    for (n, a), b in zip(plain.named_buffers(), ckpt.buffers()):
        assert torch.equal(a, b), n
    assert list(ckpt.state_dict()) == list(plain.state_dict())  # names unchanged


def test_checkpointing_recomputes_in_backward_only_with_gradients():
    torch.manual_seed(0)
    net = SMPSegmentor(arch='Unet', encoder_name='resnet18', num_classes=3)
    enable_activation_checkpointing(net.net.encoder)
    calls = []
    net.net.encoder.layer2[0].conv1.register_forward_hook(lambda *a: calls.append(1))
    x = torch.randn(1, 3, 64, 64)
    net(x).sum().backward()
    assert len(calls) == 2  # forward, then the recomputation in backward
    calls.clear()
    with torch.no_grad():
        net(x)
    assert len(calls) == 1


def test_checkpointing_a_vit_uses_timm():
    torch.manual_seed(0)
    kw = dict(arch='DPT', encoder_name='tu-vit_tiny_patch16_224', encoder_kwargs=dict(img_size=64))
    plain, ckpt, x = _pair(**kw)
    assert (
        ckpt.net.encoder.model.grad_checkpointing and not plain.net.encoder.model.grad_checkpointing
    )
    g_plain, g_ckpt = _step(plain, x), _step(ckpt, x)
    for n in g_plain:
        assert torch.allclose(g_plain[n], g_ckpt[n], atol=1e-5, rtol=1e-4), n


def test_checkpointing_an_unknown_encoder_is_refused():
    with pytest.raises(ValueError, match='activation_checkpointing'):
        SMPSegmentor(encoder_name='mobilenet_v2', num_classes=3, activation_checkpointing=True)


def test_teacher_shares_the_frozen_encoder():
    torch.manual_seed(0)
    student = SMPSegmentor(encoder_name='resnet18', num_classes=3, freeze=dict(encoder=True))
    teacher = MomentumTeacher(student, momentum=0.5)
    teacher.init_from(student)
    s_params, t_params = dict(student.named_parameters()), dict(teacher.net.named_parameters())
    enc = 'net.encoder.conv1.weight'
    assert t_params[enc] is s_params[enc]  # one tensor, no copy
    bn = 'net.encoder.bn1.running_mean'
    assert dict(teacher.net.named_buffers())[bn] is dict(student.named_buffers())[bn]
    head = 'net.segmentation_head.0.weight'
    assert t_params[head] is not s_params[head]
    assert teacher.shared_frozen == sum(
        1 for p in student.parameters() if not p.requires_grad
    ) + 3 * len(student._frozen_norms())
    # Training moves the head only; the EMA follows it and leaves the shared tensors alone.
    before = s_params[enc].clone()
    with torch.no_grad():
        s_params[head].add_(1.0)
    teacher.update(student)
    assert torch.equal(s_params[enc], before)
    assert torch.allclose(t_params[head], s_params[head] - 0.5)
    # Checkpoints keep both names and load back.
    state = teacher.state_dict()
    assert f'net.{enc}' in state
    teacher.load_state_dict(state)
    copied = MomentumTeacher(student, share_frozen=False)
    assert dict(copied.net.named_parameters())[enc] is not s_params[enc]
