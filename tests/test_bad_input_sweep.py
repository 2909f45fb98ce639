"""A sweep of bad inputs and configs: each fails with one clear error naming the file or key and
the fix, before training (issue 11). Data cases build the dataset and read every sample; config
cases run the pre-flight of tools/train.py on the toy run config; three cases run the tools as
a user does and check they print one `error:` line set, not a traceback.

Unit tests of single checks live beside their modules (tests/data/test_bad_input.py ...).
"""

import copy
import os
import re
import subprocess
import sys
from typing import Any, Callable

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from tests.conftest import toy_runner_cfg
from uda.engine.config import (
    ConfigError,
    accepted_keys,
    build_checked_runner,
    check_config_keys,
    run_tool,
)
from uda.evaluation.iou_metric import confusion_matrix
from uda.registry import DATASETS, HOOKS

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))


# --------------------------------------------------------------------------- data


@pytest.fixture
def data(tmp_path):
    """img/a.png 10x8 RGB, lbl/a.png 10x8 with ids 0, 1 and ignore 255; a list naming them."""
    (tmp_path / 'img').mkdir()
    (tmp_path / 'lbl').mkdir()
    Image.fromarray(np.zeros((8, 10, 3), np.uint8)).save(tmp_path / 'img/a.png')
    label = np.zeros((8, 10), np.uint8)
    label[0] = 1
    label[1] = 255
    Image.fromarray(label).save(tmp_path / 'lbl/a.png')
    (tmp_path / 'l.txt').write_text('img/a.png lbl/a.png\n')
    return tmp_path


def _truncate(src, dst):
    dst.write_bytes(src.read_bytes()[:40])


def _missing_image(root):
    (root / 'l.txt').write_text('img/gone.png lbl/a.png\n')


def _missing_label(root):
    (root / 'l.txt').write_text('img/a.png lbl/gone.png\n')


def _corrupt_image(root):
    _truncate(root / 'img/a.png', root / 'img/a.png')


def _corrupt_label(root):
    (root / 'lbl/a.png').write_text('not a png')


def _small_label(root):
    Image.fromarray(np.zeros((4, 5), np.uint8)).save(root / 'lbl/a.png')


def _unknown_id(root):
    label = np.zeros((8, 10), np.uint8)
    label[2, 3] = 42
    Image.fromarray(label).save(root / 'lbl/a.png')


def _empty_list(root):
    (root / 'l.txt').write_text('\n  \n')


def _three_columns(root):
    (root / 'l.txt').write_text('img/a.png lbl/a.png extra\n')


def _no_list(root):
    (root / 'l.txt').unlink()


def _nothing(root):
    pass


# (id, change to the files, dataset options, error type, pattern of the message)
DATA_CASES: list[tuple[str, Callable, dict, type, str]] = [
    ('missing image', _missing_image, {}, FileNotFoundError, r'img/gone\.png.*data_root'),
    ('missing label', _missing_label, {}, FileNotFoundError, r'lbl/gone\.png.*data_root'),
    ('corrupt image', _corrupt_image, {}, OSError, r'Cannot read image .*a\.png.*Re-export'),
    ('corrupt label', _corrupt_label, {}, OSError, r'Cannot read label .*a\.png.*Re-export'),
    (
        'label size, resized',
        _small_label,
        dict(resize=(16, 20)),
        ValueError,
        r'lbl/a\.png is 5x4 but image .*img/a\.png is 10x8.*before `resize`.*nearest',
    ),
    ('unknown label id', _unknown_id, {}, ValueError, r'lbl/a\.png has values \[42\].*label_map'),
    (
        'unmapped raw id',
        _unknown_id,
        dict(label_map={0: 0}, unmapped='error'),
        ValueError,
        r"lbl/a\.png has raw ids \[42\].*unmapped='ignore'",
    ),
    ('negative resize', _nothing, dict(resize=(-8, 16)), ValueError, r'resize=.*\(height, width\)'),
    (
        'negative crop',
        _nothing,
        dict(pipeline=[dict(type='RandomCrop', height=-8, width=8)]),
        ValueError,
        r'pipeline\[0\]: cannot build RandomCrop.*height',
    ),
    (
        'unknown transform argument',
        _nothing,
        dict(pipeline=[dict(type='RandomCrop', height=8, widht=8)]),
        ValueError,
        r"pipeline\[0\]: cannot build RandomCrop.*'widht'",
    ),
    ('empty list', _empty_list, {}, ValueError, r'l\.txt names no images.*image \[label\]'),
    ('malformed list', _three_columns, {}, ValueError, r'l\.txt:1: expected `image \[label\]`'),
    ('no list file', _no_list, {}, FileNotFoundError, r'List file not found: .*l\.txt.*data_root'),
    ('unknown protocol', _nothing, dict(protocol='camvid'), KeyError, r"protocol 'camvid'"),
]


@pytest.mark.parametrize(
    'change,options,error,pattern', [c[1:] for c in DATA_CASES], ids=[c[0] for c in DATA_CASES]
)
def test_bad_data(data, change, options, error, pattern):
    change(data)
    with pytest.raises(error, match=pattern):
        cfg = dict(type='ListFileDataset', data_root=str(data), list_file='l.txt', **options)
        dataset = DATASETS.build(cfg)
        for i in range(len(dataset)):
            dataset[i]


# --------------------------------------------------------------------------- config keys


def _set(cfg: dict, path: str, value: Any) -> None:
    *heads, last = path.split('.')
    node: Any = cfg
    for part in heads:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[last] = value


# (config key set to a typo, the key it should be, the class named)
KEY_CASES = [
    ('model.bn_polcy', 'bn_policy', 'Adapter'),
    ('model.segmentor.num_clases', 'num_classes', 'ToySegmentor'),
    ('model.terms.src.weigth', 'weight', 'SourceCE'),
    ('model.data_preprocessor.size_divisr', 'size_divisor', 'SegDataPreprocessor'),
    ('train_dataloader.num_worker', 'num_workers', 'DataLoader'),
    ('train_dataloader.sampler.shufle', 'shuffle', 'MultiBranchInfiniteSampler'),
    ('train_dataloader.dataset.branches.source.num_sample', 'num_samples', 'SyntheticDataset'),
    ('val_dataloader.dataset.with_labels', 'with_label', 'SyntheticDataset'),
    ('val_evaluator.eval_protocl', 'eval_protocol', 'IoUMetric'),
    ('default_hooks.checkpoint.intervall', 'interval', 'SafeCheckpointHook'),
    ('default_hooks.logger.intreval', 'interval', 'LoggerHook'),
    ('optim_wrapper.optimizer.momentun', 'momentum', 'SGD'),
    ('optim_wrapper.clip_grads', 'clip_grad', 'OptimWrapper'),
]


@pytest.mark.parametrize('key,close,cls', KEY_CASES, ids=[c[0] for c in KEY_CASES])
def test_unknown_key(tmp_path, key, close, cls):
    cfg = toy_runner_cfg(str(tmp_path))
    _set(cfg, key, 1)
    with pytest.raises(ConfigError) as err:
        check_config_keys(Config(cfg), 'toy.py')
    msg = str(err.value)
    assert f"{key}: {cls} has no option '{key.split('.')[-1]}'" in msg
    assert f"did you mean '{close}'" in msg and 'toy.py' in msg and 'Fix the key' in msg


def test_unknown_keys_in_hooks_lists_and_schedules(tmp_path):
    cfg = toy_runner_cfg(str(tmp_path))
    cfg['custom_hooks'] = [dict(type='EMATeacherHook', momentm=0.9)]
    cfg['param_scheduler'] = [dict(type='PolyLR', powr=0.9, by_epoch=False)]
    cfg['optim_wrapper']['paramwise_cfg'] = dict(norm_decay_mul=0.0)
    with pytest.raises(ConfigError) as err:
        check_config_keys(Config(cfg), 'toy.py')
    lines = str(err.value).splitlines()
    assert len(lines) == 5  # header, one line per key, the fix
    assert (
        "custom_hooks[0].momentm: EMATeacherHook has no option 'momentm' (did you mean "
        in (lines[1])
    )
    assert (
        "param_scheduler[0].powr: PolyLR has no option 'powr' (did you mean 'power'?)" in (lines[3])
    )
    assert (
        "paramwise_cfg.norm_decay_mul: no such option (did you mean 'norm_decay_mult'?)"
        in (lines[2])
    )


def test_unknown_keys_per_named_optimiser(tmp_path):
    """The two-optimiser layout (AdapterOptimWrapperConstructor): each wrapper and schedule."""
    cfg = toy_runner_cfg(str(tmp_path))
    cfg['optim_wrapper'] = dict(
        constructor='AdapterOptimWrapperConstructor',
        student=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3)),
        discriminators=dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-4, beta=1)),
    )
    cfg['param_scheduler'] = dict(
        student=[dict(type='PolyLR', eta_min=0.0)], discriminators=[dict(type='PolyLR', etamin=0)]
    )
    with pytest.raises(ConfigError) as err:
        check_config_keys(Config(cfg), 'toy.py')
    msg = str(err.value)
    assert "optim_wrapper.discriminators.optimizer.beta: Adam has no option 'beta'" in msg
    assert "(did you mean 'betas'?)" in msg
    assert "param_scheduler.discriminators[0].etamin: PolyLR has no option 'etamin'" in msg
    assert 'student' not in msg


def test_every_shipped_config_passes_the_key_check():
    """No false alarms: the configs of the repository use only keys their classes take."""
    import glob

    leaves = [
        f
        for f in glob.glob(os.path.join(ROOT, 'configs/**/*.py'), recursive=True)
        if '/_base_/' not in f
    ]
    assert leaves
    for path in leaves:
        check_config_keys(Config.fromfile(path), path)


def test_accepted_keys_follow_forwarded_kwargs():
    # CheckpointHook keeps **kwargs for save_checkpoint (the late failure of issue 11): only its
    # named arguments count.
    assert 'interval' in accepted_keys(HOOKS.get('CheckpointHook'))
    assert 'intervall' not in accepted_keys(HOOKS.get('CheckpointHook'))
    # ListFileDataset passes **kwargs to SegDataset.__init__: both signatures count.
    keys = accepted_keys(DATASETS.get('ListFileDataset'))
    assert {'data_root', 'list_file', 'resize', 'protocol'} <= keys

    class Elsewhere:
        def __init__(self, a: int = 0, **kwargs: Any) -> None:
            self.built = dict(**kwargs)

    assert accepted_keys(Elsewhere) is None  # handed to another call: cannot be checked


# --------------------------------------------------------------------------- class counts


@pytest.mark.parametrize('num_classes', [5, 11])
def test_model_classes_differ_from_dataset_protocol(tmp_path, num_classes):
    cfg = toy_runner_cfg(str(tmp_path))
    cfg['model']['segmentor']['num_classes'] = num_classes
    with pytest.raises(ConfigError) as err:
        build_checked_runner(Config(cfg), ('train', 'val'), 'toy.py')
    msg = str(err.value)
    assert (
        'train_dataloader.dataset.branches.source (SyntheticDataset) has protocol '
        f"'cityscapes19' with 19 classes but model.segmentor.num_classes={num_classes}"
    ) in msg
    assert "val_evaluator (IoUMetric #0) has protocol 'cityscapes19' with 19 classes" in msg
    assert 'Set model.segmentor.num_classes to the class count' in msg
    # The unlabelled target branch has no ids to disagree with.
    assert 'branches.target' not in msg


def test_evaluator_protocol_differs_from_model(tmp_path):
    cfg = toy_runner_cfg(str(tmp_path))
    cfg['val_evaluator'] = dict(type='IoUMetric', protocol='camvid11')
    with pytest.raises(ConfigError, match=r"val_evaluator .*'camvid11' with 11 classes but "):
        build_checked_runner(Config(cfg), ('train', 'val'), 'toy.py')


def test_metric_refuses_predictions_outside_protocol():
    """A 19-class model's class 15 on an 11-class protocol: an error, not class 10."""
    pred, gt = torch.tensor([0, 15]), torch.tensor([0, 10])
    with pytest.raises(ValueError, match=r'class ids up to 15.*11 classes.*num_classes'):
        confusion_matrix(pred, gt, 11)


# --------------------------------------------------------------------------- the tools


def _tool(tmp_path, *args, env=None):
    # The tools run as scripts; the toy segmentor registers when the test helpers import.
    code = (
        f'import sys, runpy; sys.path.insert(0, {ROOT!r}); import tests.conftest; '
        'sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name="__main__")'
    )
    variables = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    variables.pop('UDA_DEBUG', None)
    variables.update(env or {})
    return subprocess.run(
        [sys.executable, '-c', code, *args],
        cwd=tmp_path,
        env=variables,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _toy_config(tmp_path) -> str:
    cfg = toy_runner_cfg(str(tmp_path / 'run'))
    cfg['test_dataloader'] = copy.deepcopy(cfg['val_dataloader'])
    cfg['test_evaluator'] = copy.deepcopy(cfg['val_evaluator'])
    cfg['test_cfg'] = dict(type='TestLoop')
    path = tmp_path / 'toy_config.py'
    Config(cfg).dump(str(path))
    return str(path)


def _one_error(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 2, out.stderr[-3000:]
    assert 'Traceback' not in out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith('error: ')]
    assert len(errors) == 1, out.stderr[-3000:]
    return out.stderr[out.stderr.index('error: ') :]


def test_train_tool_typo_in_hook_option(tmp_path):
    config = _toy_config(tmp_path)
    args = [os.path.join(ROOT, 'tools/train.py'), config, '--cfg-options']
    out = _tool(tmp_path, *args, 'default_hooks.checkpoint.intervall=1')
    msg = _one_error(out)
    assert "checkpoint.intervall: SafeCheckpointHook has no option 'intervall'" in msg
    assert "did you mean 'interval'" in msg and 'UDA_DEBUG=1' in msg
    assert not list((tmp_path / 'run').glob('*.pth'))  # nothing trained


def test_run_tool_prints_one_line_or_the_traceback(monkeypatch, capsys):
    def main():
        raise KeyError('model.x: no such key. Fix it.')

    monkeypatch.delenv('UDA_DEBUG', raising=False)
    with pytest.raises(SystemExit) as code:
        run_tool(main)
    assert code.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith('error: model.x: no such key. Fix it.\n') and 'Traceback' not in err
    monkeypatch.setenv('UDA_DEBUG', '1')
    with pytest.raises(KeyError):  # the traceback, for debugging
        run_tool(main)

    def bug():
        raise AttributeError('a bug, not bad input')

    monkeypatch.delenv('UDA_DEBUG')
    with pytest.raises(AttributeError):
        run_tool(bug)


def test_train_tool_class_count_mismatch(tmp_path):
    config = _toy_config(tmp_path)
    out = _tool(
        tmp_path,
        os.path.join(ROOT, 'tools/train.py'),
        config,
        '--cfg-options',
        'model.segmentor.num_classes=5',
    )
    msg = _one_error(out)
    assert re.search(r"protocol 'cityscapes19' with 19 classes but model\.segmentor\.num_c", msg)
    assert 'IndexError' not in out.stderr


def test_test_tool_truncated_checkpoint(tmp_path):
    """tools/test.py reads the checkpoint first and names it (uda.engine.checkpoint)."""
    config = _toy_config(tmp_path)
    ckpt = tmp_path / 'iter_2.pth'
    torch.save(dict(state_dict={'w': torch.zeros(1000)}, meta={}), ckpt)
    ckpt.write_bytes(ckpt.read_bytes()[:200])
    out = _tool(tmp_path, os.path.join(ROOT, 'tools/test.py'), config, str(ckpt))
    assert out.returncode != 0 and 'Traceback' not in out.stderr
    assert str(ckpt) in out.stderr and 'truncated' in out.stderr
