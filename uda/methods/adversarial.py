"""Adversarial alignment: output space (AdaptSegNet), entropy maps (ADVENT), features (DANN).

Each term owns its discriminator(s), declares them for the ``'discriminators'`` optimiser
(:meth:`Term.optimised_modules`) and trains in two phases driven by
:meth:`uda.methods.adapter.Adapter.train_step`:

1. student phase (:meth:`forward`, discriminators frozen): the student is trained to make
   the discriminator score *target* inputs as *source* (GAN mode), or, in DANN's GRL mode,
   to maximise the discriminator's domain loss through a gradient-reversal layer;
2. discriminator phase (:meth:`phase_loss`, its own optimiser): the discriminator learns
   source = 0 / target = 1 on the *detached* inputs cached in phase 1.

Levels: ``main`` reads the final logits (or the chosen feature map), ``aux`` the auxiliary
head on the penultimate encoder stage (output/entropy terms) or that stage's features
(feature term); each level has its own discriminator, weights 1e-3 (main) / 2e-4 (aux) as
in multi-level AdaptSegNet / ADVENT.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from uda.losses import (
    domain_accuracy,
    gan_loss,
    grad_reverse,
    weighted_self_information,
)
from uda.losses.adversarial import GAN_LOSSES
from uda.methods.context import StepContext
from uda.methods.term import Term
from uda.registry import MODELS, TERMS
from uda.visualization import entropy_panel

if TYPE_CHECKING:
    from uda.methods.adapter import Adapter

SOURCE_LABEL = 0.0
TARGET_LABEL = 1.0


class _AdversarialTerm(Term):
    """Shared machinery of the adversarial terms (not registered; see the subclasses).

    Args:
        weight: Weight of the main-level adversarial loss on the segmentor.
        aux_weight: Weight of the auxiliary level; 0 disables it (and its discriminator).
        discriminator: Config of the discriminator without ``in_channels`` (filled in from
            the student); one copy per level.
        gan_loss: 'bce' or 'lsgan'.
        source_branch: Labelled source branch of the batch ([B, 3, H, W]).
        target_branch: Unlabelled target branch ([B, 3, H, W]).

    Log keys (the adapter prefixes the term's name): ``loss_adv``, and from the discriminator
    phase ``disc.loss``, ``disc.acc_src``, ``disc.acc_tgt``; ``_aux`` for the aux level.
    """

    default_discriminator: dict = dict(type='FCDiscriminator', channels=(64, 128, 256, 512))

    def __init__(
        self,
        weight: float = 1e-3,
        aux_weight: float = 2e-4,
        discriminator: Optional[dict] = None,
        gan_loss: str = 'bce',
        source_branch: str = 'source',
        target_branch: str = 'target',
    ) -> None:
        super().__init__(weight)
        if gan_loss not in GAN_LOSSES:
            raise ValueError(
                f'{type(self).__name__}(gan_loss={gan_loss!r}): use one of {GAN_LOSSES}.'
            )
        self.aux_weight = float(aux_weight)
        self.level_weights = {'main': self.weight}
        if self.aux_weight > 0:
            self.level_weights['aux'] = self.aux_weight
        self.disc_cfg = dict(discriminator or self.default_discriminator)
        if 'in_channels' in self.disc_cfg:
            raise ValueError(
                f'{type(self).__name__}.discriminator: drop in_channels; it is read '
                'from the segmentor.'
            )
        self.gan_loss = gan_loss
        self.source_branch = source_branch
        self.target_branch = target_branch
        self._cache: dict[str, tuple[Tensor, Tensor]] = {}
        self._vis: Optional[Tensor] = None

    # -------------------------------------------------------------- per-term choices
    def _in_channels(self, adapter: Adapter, level: str) -> int:
        return adapter.num_classes

    def _disc_input(self, out: dict[str, Any], level: str) -> Tensor:
        raise NotImplementedError

    def _fool_loss(self, disc: nn.Module, src: Tensor, tgt: Tensor) -> Tensor:
        """GAN mode: the discriminator should call target inputs source."""
        return gan_loss(disc(tgt), SOURCE_LABEL, self.gan_loss)

    # -------------------------------------------------------------- Term interface
    def setup(self, adapter: Adapter) -> None:
        self.discriminator = nn.ModuleDict(
            {
                level: MODELS.build(
                    dict(self.disc_cfg, in_channels=self._in_channels(adapter, level))
                )
                for level in self.level_weights
            }
        )

    def _key(self, what: str, level: str) -> str:
        return what + ('' if level == 'main' else '_aux')

    def optimised_modules(self) -> dict[str, nn.Module]:
        return {'discriminators': self.discriminator}

    def forward(self, ctx: StepContext) -> dict[str, Tensor]:
        src_out = ctx.student(self.source_branch)
        tgt_out = ctx.student(self.target_branch)
        losses: dict[str, Tensor] = {}
        self._cache = {}
        for level, w in self.level_weights.items():
            src, tgt = self._disc_input(src_out, level), self._disc_input(tgt_out, level)
            disc = self.discriminator[level]
            losses[self._key('loss_adv', level)] = w * self._fool_loss(disc, src, tgt)
            self._cache[level] = (src.detach(), tgt.detach())
        self._vis = tgt_out['logits'][:1].detach()
        return losses

    def phase_loss(self, phase: str, ctx: StepContext) -> dict[str, Tensor]:
        """Discriminator losses on the detached inputs of this step's student phase."""
        if not self._cache:
            raise RuntimeError(
                f'{type(self).__name__}.phase_loss() before forward(): the '
                'discriminator step needs the inputs of a student step.'
            )
        losses: dict[str, Tensor] = {}
        for level, (src, tgt) in self._cache.items():
            disc = self.discriminator[level]
            p_src, p_tgt = disc(src), disc(tgt)
            losses['disc.' + self._key('loss', level)] = 0.5 * (
                gan_loss(p_src, SOURCE_LABEL, self.gan_loss)
                + gan_loss(p_tgt, TARGET_LABEL, self.gan_loss)
            )
            losses['disc.' + self._key('acc_src', level)] = domain_accuracy(
                p_src, SOURCE_LABEL, self.gan_loss
            )
            losses['disc.' + self._key('acc_tgt', level)] = domain_accuracy(
                p_tgt, TARGET_LABEL, self.gan_loss
            )
        self._cache = {}
        return losses

    def vis_panels(self) -> dict[str, Tensor]:
        if self._vis is None:
            return {}
        return {f'target_entropy_{self.term_name}': entropy_panel(self._vis)}


@TERMS.register_module()
class OutputAdversarial(_AdversarialTerm):
    """AdaptSegNet: align softmax outputs [B, C, H, W] (arXiv:1802.10349).

    Args: see :class:`_AdversarialTerm`.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.needs_aux = 'aux' in self.level_weights

    def _disc_input(self, out: dict[str, Any], level: str) -> Tensor:
        logits = out['logits'] if level == 'main' else out['aux_logits']
        return F.softmax(logits.float(), dim=1)


@TERMS.register_module()
class EntropyAdversarial(_AdversarialTerm):
    """ADVENT's AdvEnt: align weighted self-information maps -p log2 p / log2 C
    [B, C, H, W] (arXiv:1811.12833).

    Args: see :class:`_AdversarialTerm`.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.needs_aux = 'aux' in self.level_weights

    def _disc_input(self, out: dict[str, Any], level: str) -> Tensor:
        return weighted_self_information(out['logits'] if level == 'main' else out['aux_logits'])


@TERMS.register_module()
class FeatureAdversarial(_AdversarialTerm):
    """Align intermediate features (DANN, arXiv:1409.7495), per location.

    Args:
        feature: 'encoder' (the encoder's list of stages) or 'decoder' (the decoder output).
        in_index: Encoder stage of the main level (-1 = deepest).
        aux_in_index: Encoder stage of the aux level (-2 = penultimate); used when
            ``aux_weight > 0``.
        mode: 'grl': the segmentor maximises the discriminator's domain loss on source and
            target through a gradient-reversal layer (coefficient ``grl_coeff``); 'gan': the
            segmentor minimises the loss of target features labelled source (two-step GAN).
            Either way the discriminator's own update is the second phase on detached
            features, which gives it the same gradient DANN's single backward would, while
            AMP scalers, accumulation and learning rates stay per optimiser.
        grl_coeff: Multiplier of the reversed gradient (DANN's lambda).
        weight, aux_weight, discriminator, gan_loss, source_branch, target_branch: see
            :class:`_AdversarialTerm`; the discriminator defaults to ``FeatureDiscriminator``.
    """

    default_discriminator = dict(type='FeatureDiscriminator', channels=(256, 256), kernel_size=1)

    def __init__(
        self,
        feature: str = 'encoder',
        in_index: int = -1,
        aux_in_index: int = -2,
        mode: str = 'grl',
        grl_coeff: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if feature not in ('encoder', 'decoder'):
            raise ValueError(
                f"FeatureAdversarial(feature={feature!r}): use 'encoder' or 'decoder'."
            )
        if mode not in ('grl', 'gan'):
            raise ValueError(f"FeatureAdversarial(mode={mode!r}): use 'grl' or 'gan'.")
        if feature == 'decoder' and 'aux' in self.level_weights:
            raise ValueError(
                "FeatureAdversarial(feature='decoder') has one level; set "
                'aux_weight=0 or use the encoder features.'
            )
        self.feature, self.mode, self.grl_coeff = feature, mode, float(grl_coeff)
        self.index = {'main': in_index, 'aux': aux_in_index}

    def _disc_input(self, out: dict[str, Any], level: str) -> Tensor:
        if self.feature == 'decoder':
            return out['decoder']
        return out['features'][self.index[level]]

    def _in_channels(self, adapter: Adapter, level: str) -> int:
        student = adapter.student
        if self.feature == 'encoder' and hasattr(student, 'encoder_channels'):
            return int(student.encoder_channels[self.index[level]])
        # Any other segmentor: read the channels from one small forward in eval mode.
        was_training = student.training
        student.eval()
        try:
            with torch.no_grad():
                out = student(torch.zeros(1, 3, 64, 64), return_features=True)
        finally:
            student.train(was_training)
        return int(self._disc_input(out, level).shape[1])

    def _fool_loss(self, disc: nn.Module, src: Tensor, tgt: Tensor) -> Tensor:
        if self.mode == 'gan':
            return super()._fool_loss(disc, src, tgt)
        return 0.5 * (
            gan_loss(disc(grad_reverse(src, self.grl_coeff)), SOURCE_LABEL, self.gan_loss)
            + gan_loss(disc(grad_reverse(tgt, self.grl_coeff)), TARGET_LABEL, self.gan_loss)
        )
