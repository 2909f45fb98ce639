"""Terms and labellers depend on the method base, never on each other or on the adapter.

A term file (``uda/methods/<term>.py``) imports at run time only the step context and term
interface (``uda.methods.context`` / ``uda.methods.term``), the shared labellers, losses,
augmentations, panels, the registries and the networks a term owns (PAMR); the adapter only for
type hints (``if TYPE_CHECKING:``). It reads the step only through the context: never
``ctx._adapter``, never a ``backward()`` of its own (a term yields partial losses instead).
"""

import ast
from pathlib import Path

import pytest

METHODS = Path(__file__).resolve().parents[2] / 'uda' / 'methods'
BASE = {'__init__.py', 'adapter.py', 'context.py', 'term.py'}
ALLOWED = (
    'uda.methods.context',
    'uda.methods.term',
    'uda.methods.labellers',
    'uda.losses',
    'uda.augment',
    'uda.visualization',
    'uda.registry',
    'uda.models.pamr',  # a parameter-free refinement network the CAM term runs
)
TERM_FILES = sorted(p.name for p in METHODS.glob('*.py') if p.name not in BASE)


def _runtime_imports(tree: ast.Module) -> list[str]:
    """Modules imported outside ``if TYPE_CHECKING:`` blocks."""
    out = []

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and 'TYPE_CHECKING' in ast.unparse(node.test):
                visit(node.orelse)
                continue
            if isinstance(node, ast.ImportFrom) and node.module:
                out.append(node.module)
            elif isinstance(node, ast.Import):
                out.extend(a.name for a in node.names)
            for field in ('body', 'orelse', 'finalbody', 'handlers'):
                visit(getattr(node, field, []) or [])

    visit(tree.body)
    return out


def _allowed(module: str) -> bool:
    return any(module == a or module.startswith(a + '.') for a in ALLOWED)


def test_every_term_file_is_checked():
    assert {'sac.py', 'class_mix.py', 'unimatch.py', 'labellers.py'} <= set(TERM_FILES)


@pytest.mark.parametrize('name', TERM_FILES)
def test_term_files_import_only_the_method_base(name):
    source = (METHODS / name).read_text()
    tree = ast.parse(source)
    bad = [m for m in _runtime_imports(tree) if m.startswith('uda') and not _allowed(m)]
    assert not bad, f'uda/methods/{name} imports {bad}; terms may import only {ALLOWED}'


@pytest.mark.parametrize('name', TERM_FILES)
def test_terms_read_the_step_only_through_the_context(name):
    tree = ast.parse((METHODS / name).read_text())
    private = [
        n.attr
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute) and n.attr in ('_adapter', 'backward', 'backward_now')
    ]
    assert not private, f'uda/methods/{name} reaches past the context: {private}'


def test_the_rule_catches_a_term_importing_another_term():
    tree = ast.parse(
        'from typing import TYPE_CHECKING\n'
        'from uda.methods.class_mix import ClassMix\n'
        'if TYPE_CHECKING:\n    from uda.methods.adapter import Adapter\n'
    )
    imported = _runtime_imports(tree)
    assert imported == ['typing', 'uda.methods.class_mix']
    assert not _allowed('uda.methods.class_mix') and not _allowed('uda.methods.adapter')
