"""README's Layout and docs/architecture.md's module map list every module of ``uda/``, and
nothing that is not there: a map that matches the territory."""

import glob
import os
import re

ROOT = os.path.join(os.path.dirname(__file__), '..')


def _modules() -> list[str]:
    """``uda/...py`` paths of every module except the packages' ``__init__.py``."""
    paths = glob.glob(os.path.join(ROOT, 'uda', '**', '*.py'), recursive=True)
    rel = [os.path.relpath(p, ROOT).replace(os.sep, '/') for p in paths]
    return sorted(p for p in rel if not p.endswith('__init__.py'))


def _section(path: str, heading: str) -> str:
    with open(os.path.join(ROOT, path)) as f:
        text = f.read()
    start = text.index(f'\n{heading}\n')
    end = text.find('\n## ', start + 1)
    return text[start : end if end >= 0 else len(text)]


def _layout_blocks() -> dict[str, str]:
    """README Layout's code block as ``{'uda/data/': text of its lines, ...}``: an entry starts
    at a line beginning with its path, continuation lines are indented."""
    block = _section('README.md', '## Layout').split('```')[1]
    entries: dict[str, str] = {}
    key = None
    for line in block.splitlines():
        if line and not line[0].isspace():
            key, _, rest = line.partition(' ')
            entries[key] = rest
        elif key is not None:
            entries[key] += ' ' + line.strip()
    return entries


def test_readme_layout_lists_every_module_under_its_package():
    blocks = _layout_blocks()
    missing = []
    for module in _modules():
        package, name = module.rsplit('/', 1)
        if package == 'uda':  # a top-level module is its own entry
            ok = module in blocks
        else:
            ok = re.search(rf'(^|\s){re.escape(name)}([\s,;:)]|$)', blocks.get(package + '/', ''))
        if not ok:
            missing.append(module)
    assert not missing, f'README.md Layout: add {missing} (under their package line)'


def test_readme_layout_names_no_module_that_does_not_exist():
    stale = []
    for key, text in _layout_blocks().items():
        if not key.startswith('uda/'):
            continue
        if key.endswith('.py'):
            if not os.path.isfile(os.path.join(ROOT, key)):
                stale.append(key)
            continue
        assert os.path.isdir(os.path.join(ROOT, key)), f'README.md Layout: no folder {key}'
        for name in re.findall(r'(?:^|\s)([a-z_0-9]+\.py)(?=[\s,;:)]|$)', text):
            if not os.path.isfile(os.path.join(ROOT, key, name)):
                stale.append(key + name)
    assert not stale, f'README.md Layout names modules that do not exist: {stale}'


def test_architecture_module_map_lists_every_module_and_only_those():
    table = _section('docs/architecture.md', '## Module map')
    listed = re.findall(r'^\| `(uda/[^`]+\.py)` \|', table, flags=re.MULTILINE)
    modules = _modules()
    assert sorted(set(modules) - set(listed)) == [], 'docs/architecture.md Module map: add these'
    assert sorted(set(listed) - set(modules)) == [], 'docs/architecture.md: modules that are gone'
    assert len(listed) == len(set(listed)), 'docs/architecture.md Module map: a module twice'
