"""Losses: pure functions plus thin registered modules."""
from uda.losses.adversarial import domain_accuracy, gan_loss, grad_reverse
from uda.losses.cross_entropy import CrossEntropyLoss, cross_entropy
from uda.losses.entropy import entropy_loss, pixel_entropy, weighted_self_information

__all__ = ['CrossEntropyLoss', 'cross_entropy', 'domain_accuracy', 'entropy_loss', 'gan_loss',
           'grad_reverse', 'pixel_entropy', 'weighted_self_information']
