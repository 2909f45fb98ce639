"""Class protocols and label maps are data: every file loads, maps are complete and exact."""

import numpy as np
import pytest

from uda.data import SegDataset, get_label_map, get_protocol
from uda.data.classes import available_label_maps, available_protocols

# The official Cityscapes table (cityscapesscripts/helpers/labels.py), written out here
# independently of the JSON so a typo in either one fails.
CITYSCAPES_TRAIN_IDS = {
    7: 0,
    8: 1,
    11: 2,
    12: 3,
    13: 4,
    17: 5,
    19: 6,
    20: 7,
    21: 8,
    22: 9,
    23: 10,
    24: 11,
    25: 12,
    26: 13,
    27: 14,
    28: 15,
    31: 16,
    32: 17,
    33: 18,
}


@pytest.mark.parametrize('name', available_protocols())
def test_every_protocol_loads(name):
    p = get_protocol(name)
    assert p.eval_ids and len(p.palette) == p.num_classes


@pytest.mark.parametrize('name', available_label_maps())
def test_every_label_map_loads_onto_its_protocol(name):
    m = get_label_map(name)
    proto = get_protocol(m.to)
    assert all(v == 255 or 0 <= v < proto.num_classes for _, v in m.mapping)


def test_required_protocols():
    assert get_protocol('cityscapes19').num_classes == 19
    assert get_protocol('camvid11').classes[:4] == ('sky', 'building', 'pole', 'road')
    s16, s13 = get_protocol('synthia16'), get_protocol('synthia13')
    assert len(s16.eval_ids) == 16 and len(s13.eval_ids) == 13
    # 16 = 19 without terrain (9), truck (14), train (16); 13 = 16 without wall, fence, pole.
    assert set(range(19)) - set(s16.eval_ids) == {9, 14, 16}
    assert set(s16.eval_ids) - set(s13.eval_ids) == {3, 4, 5}


def test_cityscapes_labelid_map_is_the_official_table():
    m = get_label_map('cityscapes_labelids').as_dict()
    assert sorted(m) == list(range(34))
    assert m == {i: CITYSCAPES_TRAIN_IDS.get(i, 255) for i in range(34)}


def test_synthia_map():
    m = get_label_map('synthia_ids').as_dict()
    assert sorted(m) == list(range(23))
    assert (
        m[3],
        m[4],
        m[2],
        m[21],
        m[5],
        m[7],
        m[15],
        m[9],
        m[6],
        m[16],
        m[1],
        m[10],
        m[17],
        m[8],
        m[18],
        m[19],
        m[20],
        m[12],
        m[11],
    ) == tuple(range(19))
    assert m[0] == m[13] == m[14] == m[22] == 255


def test_camvid_to_cityscapes_map():
    m = get_label_map('camvid11_to_cityscapes19').as_dict()
    cv, cs = get_protocol('camvid11').classes, get_protocol('cityscapes19').classes
    names = {cv[k]: cs[v] for k, v in m.items() if v != 255}
    assert names == {
        'sky': 'sky',
        'building': 'building',
        'pole': 'pole',
        'road': 'road',
        'sidewalk': 'sidewalk',
        'tree': 'vegetation',
        'sign symbol': 'traffic sign',
        'fence': 'fence',
        'car': 'car',
        'pedestrian': 'person',
        'bicyclist': 'rider',
    }
    assert m[11] == 255
    shared = get_protocol('camvid11_in_cityscapes19')
    assert set(shared.eval_ids) == {v for v in m.values() if v != 255}


def test_unknown_label_map_lists_the_available_ones():
    with pytest.raises(KeyError, match=r"Unknown label map 'nope'.*cityscapes_labelids"):
        get_label_map('nope')


def test_map_onto_another_protocol_is_rejected():
    with pytest.raises(ValueError, match=r"maps onto protocol 'cityscapes19'.*'camvid11'"):
        SegDataset(protocol='camvid11', label_map='cityscapes_labelids')


def test_strict_map_names_unlisted_raw_ids():
    ds = SegDataset(protocol='cityscapes19', label_map='cityscapes_labelids', unmapped='error')
    raw = np.array([[7, 26], [40, 0]], np.uint8)
    with pytest.raises(
        ValueError,
        match=r"x\.png has raw ids \[40\].*'cityscapes_labelids'"
        r".*0-33.*unmapped='ignore'",
    ):
        ds.map_label(raw, 'x.png')
    lenient = SegDataset(
        protocol='cityscapes19', label_map='cityscapes_labelids', unmapped='ignore'
    )
    assert lenient.map_label(raw, 'x.png').tolist() == [[0, 13], [255, 255]]
