"""Datasets, class protocols, pipelines, samplers and the built-in synthetic scenes."""
from uda.data.base import SegDataset, read_image, read_label
from uda.data.classes import ClassProtocol, get_protocol
from uda.data.importance import ImportanceSampler
from uda.data.list_file import ListFileDataset
from uda.data.multi_branch import MultiBranchDataset, MultiBranchInfiniteSampler, uda_collate
from uda.data.pipelines import build_pipeline
from uda.data.synthetic import SyntheticDataset, render_scene

__all__ = ['SegDataset', 'read_image', 'read_label', 'ClassProtocol', 'get_protocol',
           'ImportanceSampler', 'ListFileDataset', 'MultiBranchDataset',
           'MultiBranchInfiniteSampler', 'uda_collate', 'build_pipeline', 'SyntheticDataset',
           'render_scene']
