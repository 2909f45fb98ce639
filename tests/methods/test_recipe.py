"""README's "Add a method" recipe, followed literally: its term and labeller code blocks are
written to files, imported (registered), and trained by the Runner under a teacher warm-up."""

import importlib.util
import json
import os
import re
import sys
import textwrap
from pathlib import Path

from mmengine.config import Config
from mmengine.runner import Runner

import uda.engine  # noqa: F401  (hooks)
from tests.conftest import toy_runner_cfg
from uda.registry import LABELLERS, TERMS

README = Path(__file__).resolve().parents[2] / 'README.md'


def recipe_blocks() -> list[str]:
    """The python code blocks of README's "Add a method" section, dedented."""
    text = README.read_text()
    section = text[text.index('## Add a method\n') :]
    section = section[: section.index('\n## ', 1)]
    blocks = re.findall(r'```python\n(.*?)\n\s*```', section, flags=re.S)
    return [textwrap.dedent(b) for b in blocks]


def _import(path: Path, name: str) -> None:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


def _logged(work_dir: Path) -> list[dict]:
    found = []
    for root, _, files in os.walk(work_dir):
        if 'scalars.json' in files:
            with open(os.path.join(root, 'scalars.json')) as fh:
                found += [json.loads(line) for line in fh if '"loss"' in line]
    return sorted(found, key=lambda d: d['iter'])


def test_the_recipe_term_and_labeller_train_after_the_teacher_warm_up(tmp_path):
    term_code, labeller_code = recipe_blocks()
    files = {'my_consistency': term_code, 'my_labeller': labeller_code}
    try:
        for name, code in files.items():
            path = tmp_path / f'{name}.py'
            path.write_text(code)
            _import(path, f'_recipe_{name}')
        term_cls = TERMS.get('MyConsistency')
        assert term_cls.labeller_args == {'labeller': dict(type='MyLabeller')}
        cfg = toy_runner_cfg(
            str(tmp_path / 'work'),
            max_iters=4,
            val_interval=4,
            checkpoint_interval=4,
            bn_policy='train',
            terms=dict(src=dict(type='SourceCE'), my=dict(type='MyConsistency')),
            labellers=dict(teacher_ent=dict(type='MyLabeller', threshold=0.0)),
        )
        cfg['model']['teacher'] = dict(momentum=0.9, interval=1, start_iter=2)
        runner = Runner.from_cfg(Config(cfg))
        model = runner.model
        # The term names a teacher labeller: it starts with the teacher, after the warm-up.
        assert model.terms['my'].needs_teacher and model.phases['my'] == (2, None)
        runner.train()
        logged = _logged(tmp_path / 'work')
        assert [d['iter'] for d in logged] == [1, 2, 3, 4]
        assert all('my.loss' not in d for d in logged[:2])  # warm-up: no teacher yet
        assert all(d['my.loss'] > 0 and 'my.kept' in d for d in logged[2:])
    finally:
        TERMS._module_dict.pop('MyConsistency', None)
        LABELLERS._module_dict.pop('MyLabeller', None)
        for name in files:
            sys.modules.pop(f'_recipe_{name}', None)
