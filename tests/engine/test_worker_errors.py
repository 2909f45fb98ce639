"""An error raised in a DataLoader worker reaches the user as the single `error:` line of a
main-process error (issue 25, item 1), not torch's "Caught OSError in DataLoader worker
process 0" and the worker's traceback."""

import numpy as np
import pytest
from PIL import Image
from torch.utils.data import DataLoader

from uda.data import ListFileDataset
from uda.engine.config import run_tool, unwrap_worker_error


@pytest.fixture
def data(tmp_path):
    (tmp_path / 'img').mkdir()
    (tmp_path / 'lbl').mkdir()
    Image.fromarray(np.zeros((8, 10, 3), np.uint8)).save(tmp_path / 'img/a.png')
    Image.fromarray(np.zeros((8, 10), np.uint8)).save(tmp_path / 'lbl/a.png')
    return tmp_path


def _truncated_png(root):
    path = root / 'img/a.png'
    path.write_bytes(path.read_bytes()[:40])


def _unknown_label_id(root):
    label = np.zeros((8, 10), np.uint8)
    label[2, 3] = 42
    Image.fromarray(label).save(root / 'lbl/a.png')


CASES = [
    ('truncated png', _truncated_png, OSError, r'Cannot read image .*img/a\.png .*Re-export it'),
    (
        'unknown label id',
        _unknown_label_id,
        ValueError,
        r'Label .*lbl/a\.png has values \[42\] outside .*Set `label_map`',
    ),
]


@pytest.mark.parametrize('change,error,pattern', [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_worker_error_is_one_error_line(data, change, error, pattern, monkeypatch, capsys):
    change(data)
    (data / 'l.txt').write_text('img/a.png lbl/a.png\n')
    dataset = ListFileDataset(data_root=str(data), list_file='l.txt')
    loader = DataLoader(dataset, batch_size=1, num_workers=1, collate_fn=lambda b: b)

    # Without the unwrapping: torch's wrapper around the worker's traceback.
    with pytest.raises(error) as raised:
        next(iter(loader))
    assert str(raised.value).startswith('Caught ') and 'worker process 0' in str(raised.value)

    monkeypatch.delenv('UDA_DEBUG', raising=False)
    with pytest.raises(SystemExit) as code:
        run_tool(lambda: next(iter(loader)))
    assert code.value.code == 2
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert lines[0].startswith('error: ') and len(lines) == 2, err
    assert 'Traceback' not in err and 'Caught ' not in err and 'worker process' not in err
    import re

    assert re.search(pattern, lines[0]), lines[0]
    assert lines[1] == f'(UDA_DEBUG=1 shows the traceback of this {error.__name__})'


def test_worker_key_error_and_chained_cause():
    class Keyed:
        def __len__(self):
            return 1

        def __getitem__(self, i):
            try:
                raise ValueError('inner cause')
            except ValueError as cause:
                raise KeyError("Unknown class protocol 'x'. Use one of ['a'].") from cause

    loader = DataLoader(Keyed(), batch_size=1, num_workers=1)
    with pytest.raises(KeyError) as raised:
        next(iter(loader))
    message = str(raised.value.args[0])
    assert 'inner cause' in message  # the chain is in torch's message ...
    # ... and only the last exception's message comes out, unquoted.
    assert unwrap_worker_error(message) == "Unknown class protocol 'x'. Use one of ['a']."


def test_unwrap_keeps_other_messages_and_multiline_ones():
    assert unwrap_worker_error('Label x.png: fix it') == 'Label x.png: fix it'
    wrapped = (
        'Caught ConfigError in DataLoader worker process 1.\nOriginal Traceback (most recent '
        'call last):\n  File "a.py", line 1, in f\n    g()\nuda.engine.config.ConfigError: '
        'Unknown keys in c.py:\n  model.x: no option\nFix the key.\n'
    )
    assert (
        unwrap_worker_error(wrapped) == 'Unknown keys in c.py:\n  model.x: no option\nFix the key.'
    )
