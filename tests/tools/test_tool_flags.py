"""Every command-line flag of the tools and benchmark scripts has help text, and ``--device``
means the same everywhere (one helper: a torch device name or 'auto')."""

import argparse
import ast
import glob
import os

import pytest
import torch

from uda.engine.config import add_device_argument, resolve_device

ROOT = os.path.join(os.path.dirname(__file__), '..', '..')
SCRIPTS = sorted(
    glob.glob(os.path.join(ROOT, 'tools', '*.py'))
    + glob.glob(os.path.join(ROOT, 'benchmarks', '*.py'))
    # The shared parsers of tools/train.py and tools/pretrain.py.
    + [os.path.join(ROOT, 'uda', 'engine', 'config.py')]
)


def _add_argument_calls(path: str) -> list[ast.Call]:
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == 'add_argument'
    ]


def _flag(call: ast.Call) -> str:
    names = [a.value for a in call.args if isinstance(a, ast.Constant)]
    return names[0] if names else '?'


@pytest.mark.parametrize('path', SCRIPTS, ids=lambda p: os.path.relpath(p, ROOT))
def test_every_flag_has_help_text(path):
    missing = []
    for call in _add_argument_calls(path):
        help_kw = [k for k in call.keywords if k.arg == 'help']
        empty = (
            help_kw and isinstance(help_kw[0].value, ast.Constant) and not help_kw[0].value.value
        )
        if not help_kw or empty:
            missing.append(f'{_flag(call)} (line {call.lineno})')
    assert not missing, f'{os.path.relpath(path, ROOT)}: add help= to {missing}'


@pytest.mark.parametrize('path', SCRIPTS[:-1], ids=lambda p: os.path.relpath(p, ROOT))
def test_device_flag_comes_from_the_shared_helper(path):
    """A script that takes a device declares it through ``add_device_argument`` only."""
    own = [c.lineno for c in _add_argument_calls(path) if _flag(c) == '--device']
    assert not own, (
        f'{os.path.relpath(path, ROOT)}:{own}: use uda.engine.config.add_device_argument'
    )


def test_device_argument_resolves_auto_and_keeps_explicit_names():
    parser = argparse.ArgumentParser()
    add_device_argument(parser)
    expected = 'cuda' if torch.cuda.is_available() else 'cpu'
    assert parser.parse_args([]).device == expected  # 'auto', resolved
    assert parser.parse_args(['--device', 'auto']).device == expected
    assert resolve_device('auto') == expected
    assert resolve_device('cpu') == 'cpu'
    assert resolve_device('cuda:1') == 'cuda:1'
    with pytest.raises(SystemExit):  # not a torch device: one argparse error
        parser.parse_args(['--device', 'gpu0'])
    bench = argparse.ArgumentParser()
    add_device_argument(bench, default='cpu')
    assert bench.parse_args([]).device == 'cpu'
