"""Losses: pure functions (terms in uda/methods call them; no config builds a loss module)."""

from uda.losses.adversarial import domain_accuracy, gan_loss, grad_reverse
from uda.losses.cam import balanced_mask_ce, focal_mask_penalty, ngwp_scores, pseudo_masks
from uda.losses.consistency import focal_class_weights, masked_consistency_loss, pixel_kl, sac_loss
from uda.losses.cross_entropy import cross_entropy, ohem_cross_entropy
from uda.losses.entropy import entropy_loss, pixel_entropy, weighted_self_information

__all__ = [
    'balanced_mask_ce',
    'focal_mask_penalty',
    'ngwp_scores',
    'pseudo_masks',
    'cross_entropy',
    'focal_class_weights',
    'masked_consistency_loss',
    'pixel_kl',
    'sac_loss',
    'ohem_cross_entropy',
    'domain_accuracy',
    'entropy_loss',
    'gan_loss',
    'grad_reverse',
    'pixel_entropy',
    'weighted_self_information',
]
