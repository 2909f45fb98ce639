"""Losses: pure functions plus thin registered modules."""
from uda.losses.cross_entropy import CrossEntropyLoss, cross_entropy

__all__ = ['CrossEntropyLoss', 'cross_entropy']
