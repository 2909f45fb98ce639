"""Virtual adversarial training (Miyato et al., TPAMI 2018, arXiv:1704.03976), per pixel.

The student's prediction on an unlabelled image should not change under the small input
perturbation that changes it most. That direction ``r_adv`` is estimated by one power
iteration on the KL divergence between the clean prediction (fixed) and the prediction at
``x + xi * d`` from a random unit direction ``d``; the loss is the KL divergence at
``x + r_adv``. Reference code: takerum/vat_tf ``vat.py`` (``virtual_adversarial_loss``,
``generate_virtual_adversarial_perturbation``, ``get_normalized_vector``).
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

from uda.losses import pixel_kl
from uda.methods.context import StepContext
from uda.methods.term import Term
from uda.registry import TERMS


def l2_normalize(d: Tensor) -> Tensor:
    """Per-image unit L2 norm of ``d`` [B, ...]; first scaled by its max magnitude, as
    ``get_normalized_vector`` in takerum/vat_tf, so tiny power-iteration gradients do not
    underflow when squared."""
    flat = d.flatten(1)
    flat = flat / (flat.abs().amax(1, keepdim=True) + 1e-12)
    flat = flat / torch.sqrt(1e-6 + (flat**2).sum(1, keepdim=True))
    return flat.view_as(d)


def adversarial_perturbation(
    forward: Callable[[Tensor], Tensor],
    x: Tensor,
    clean_logits: Tensor,
    eps: float,
    xi: float = 1e-6,
    power_iters: int = 1,
    valid: Optional[Tensor] = None,
    generator: Optional[torch.Generator] = None,
) -> Tensor:
    """``r_adv`` [B, 3, H, W] with per-image L2 norm ``eps`` (Miyato et al., eq. 10-13).

    ``d ~ N(0, I)`` normalised per image; ``power_iters`` times ``d <- normalize(grad_d
    KL(p(y|x) || p(y|x + xi d)))`` with ``p(y|x)`` fixed; ``r_adv = eps * d``. The gradient is
    taken with :func:`torch.autograd.grad` with respect to ``d`` only, so no parameter
    receives a gradient from the power iteration.

    Args:
        forward: Logits of the network on an input (the caller decides BN behaviour).
        x: Normalised images [B, 3, H, W].
        clean_logits: [B, C, H, W] logits on ``x`` (detached here).
        eps: Per-image L2 norm of the perturbation (normalised input space).
        xi: Finite-difference step of the power iteration.
        power_iters: Power iterations (1 in the paper).
        valid: Optional [B, H, W] bool: padding is neither perturbed nor counted.
        generator: Optional generator of the random start ``d``.
    """
    clean = clean_logits.detach()
    mask = None if valid is None else valid[:, None].to(x.dtype)
    # Drawn on the CPU when a generator is given (reproducible on any device).
    where = 'cpu' if generator is not None else x.device
    d = torch.randn(x.shape, generator=generator, device=where).to(x.device, x.dtype)
    for _ in range(int(power_iters)):
        if mask is not None:
            d = d * mask
        d = (xi * l2_normalize(d)).requires_grad_(True)
        with torch.enable_grad():
            dist = pixel_kl(clean, forward(x.detach() + d), valid)
            (grad,) = torch.autograd.grad(dist, [d])
        d = grad.detach()
    if mask is not None:
        d = d * mask
    return eps * l2_normalize(d)


@TERMS.register_module()
class VirtualAdversarial(Term):
    """Per-pixel VAT loss ``KL(p(y|x) || p(y|x + r_adv))`` on an unlabelled branch.

    ``p(y|x)`` is the student's own (cached) clean prediction on ``branch``, detached; the
    power-iteration forwards and the adversarial forward are extra student forwards on
    ``x + xi d`` and ``x + r_adv`` that never update BN running statistics, whatever the
    adapter's ``bn_policy`` (vat_tf ``update_batch_stats=False``); the clean forward follows
    the policy like every cached branch forward. Padding is neither perturbed nor counted.

    ``eps`` is the L2 norm of the whole perturbation per image in the normalised input space
    (ImageNet mean / std), so the same ``eps`` is a weaker per-pixel change on larger images
    (RMS per element ``eps / sqrt(3 H W)``). Default 8.0: the paper's CIFAR-10 value (32x32,
    RMS 0.14); at 96x192 it is RMS 0.034 (about 2 grey levels), at 512x1024 0.0065; scale it by
    ``sqrt(H W / 1024)`` to keep the CIFAR-10 strength. ``xi = 1e-6`` as the paper and
    takerum/vat_tf; in float32 a step of ``xi / sqrt(3 H W)`` per element is near the rounding
    of normalised pixel values, so the direction is partly rounding noise: on a small conv net
    (32x32, eps 2) it reached 2/3 of the divergence that ``xi = 1e-3`` reaches (both well above
    a random direction). Raise ``xi`` if the logged loss stays near a random perturbation's.

    Returns ``loss`` and ``r_norm`` (mean L2 norm of ``r_adv``, logged).

    Args:
        weight: Loss weight alpha (1.0 in the paper).
        eps: Per-image L2 norm of ``r_adv`` (8.0, see above).
        xi: Finite-difference step of the power iteration (1e-6).
        power_iters: Power iterations K (1).
        branch: Unlabelled branch [B, 3, H, W] (``'target'`` in UDA, ``'unlabeled'`` in SSL).
    """

    def __init__(
        self,
        weight: float = 1.0,
        eps: float = 8.0,
        xi: float = 1e-6,
        power_iters: int = 1,
        branch: str = 'target',
    ) -> None:
        super().__init__(weight)
        if eps <= 0 or xi <= 0 or int(power_iters) < 1:
            raise ValueError(
                f'VirtualAdversarial(eps={eps}, xi={xi}, power_iters={power_iters}): use '
                'eps > 0, xi > 0 and power_iters >= 1 (paper: xi 1e-6, one iteration).'
            )
        self.eps, self.xi, self.power_iters = float(eps), float(xi), int(power_iters)
        self.branch = branch

    def forward(self, ctx: StepContext) -> dict[str, Tensor]:
        x = ctx.inputs(self.branch)
        clean = ctx.student(self.branch)['logits'].detach()
        valid = ctx.valid_pixels(self.branch)
        r_adv = adversarial_perturbation(
            lambda v: ctx.student_forward(v, update_bn=False)['logits'],
            x,
            clean,
            self.eps,
            self.xi,
            self.power_iters,
            valid,
        )
        adv = ctx.student_forward(x + r_adv, update_bn=False)['logits']
        loss = pixel_kl(clean, adv, valid)
        return {
            'loss': self.weight * loss,
            'r_norm': r_adv.flatten(1).norm(dim=1).mean().detach(),
        }
