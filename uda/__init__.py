"""uda: semantic segmentation under domain shift and scarce labels."""

__version__ = '0.1.0'
