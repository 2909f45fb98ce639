"""Datasets, class protocols, pipelines, samplers and the built-in synthetic scenes."""

from uda.data.base import FilePairDataset, SegDataset, read_image, read_label
from uda.data.camvid import CamVidDataset
from uda.data.cityscapes import CityscapesDataset
from uda.data.classes import ClassProtocol, LabelMap, get_label_map, get_protocol
from uda.data.domains import DomainDatasets
from uda.data.gta5 import GTA5Dataset
from uda.data.importance import ImportanceSampler
from uda.data.list_file import ListFileDataset
from uda.data.multi_branch import MultiBranchDataset, MultiBranchInfiniteSampler, uda_collate
from uda.data.pipelines import build_pipeline
from uda.data.rare_class import RareClassCrop, RareClassSampler
from uda.data.splits import SemiSplit, read_split_file, split_indices
from uda.data.synthetic import SyntheticDataset, render_scene
from uda.data.synthia import SynthiaDataset, read_synthia_label
from uda.data.unlabelled import UnlabelledImages
from uda.data.voc import VOCDataset

__all__ = [
    'DomainDatasets',
    'SegDataset',
    'read_image',
    'read_label',
    'ClassProtocol',
    'get_protocol',
    'LabelMap',
    'get_label_map',
    'FilePairDataset',
    'CamVidDataset',
    'CityscapesDataset',
    'GTA5Dataset',
    'SynthiaDataset',
    'read_synthia_label',
    'ImportanceSampler',
    'ListFileDataset',
    'MultiBranchDataset',
    'MultiBranchInfiniteSampler',
    'uda_collate',
    'build_pipeline',
    'RareClassCrop',
    'RareClassSampler',
    'SyntheticDataset',
    'render_scene',
    'SemiSplit',
    'read_split_file',
    'split_indices',
    'VOCDataset',
    'UnlabelledImages',
]
