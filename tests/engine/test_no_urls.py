"""Configs are Python and run when loaded, checkpoints are unpickled: the tools read neither
from a URL (issue 25, item 8). A local HTTP server on 127.0.0.1 counts the requests: none."""

from __future__ import annotations

import http.server
import os
import runpy
import sys
import threading
from argparse import Namespace

import pytest
from mmengine.config import Config

from tests.conftest import toy_runner_cfg
from uda.engine.checkpoint import load_checkpoint_file
from uda.engine.config import load_config, load_training_config, run_tool

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))


@pytest.fixture
def server():
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server name
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"print('config code ran')\n")

        def log_message(self, *args):
            pass

    httpd = http.server.HTTPServer(('127.0.0.1', 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{httpd.server_port}', hits
    httpd.shutdown()
    thread.join()


def test_api_refuses_urls(tmp_path, server):
    url, hits = server
    with pytest.raises(ValueError, match=r'Config http://.*/c\.py is a URL.*Python code'):
        load_config(f'{url}/c.py')
    with pytest.raises(ValueError, match=r'Checkpoint http://.*/x\.pth is a URL.*unpickled'):
        load_checkpoint_file(f'{url}/x.pth')
    config = str(tmp_path / 'toy.py')
    Config(toy_runner_cfg(str(tmp_path / 'run'))).dump(config)
    with pytest.raises(ValueError, match=r'load_from of .*toy\.py: http://.*is a URL'):
        load_config(config, {'load_from': f'{url}/x.pth'})
    args = Namespace(
        config=config, cfg_options={}, work_dir=None, seed=None, launcher='none', resume=None
    )
    with pytest.raises(ValueError, match=r'--resume s3://bucket/iter_8\.pth is a URL'):
        load_training_config(Namespace(**dict(vars(args), resume='s3://bucket/iter_8.pth')))
    assert load_training_config(args).get('load_from') is None  # local files still load
    assert hits == []


@pytest.mark.parametrize(
    'tool,argv',
    [
        ('test.py', ['{config}', '{url}/iter_8.pth']),
        ('infer.py', ['{tmp}', '--model', '{url}/m.pth', '--config', '{config}', '--out-dir', 'o']),
        ('infer.py', ['{tmp}', '--model', '{url}/m.onnx', '--out-dir', '{tmp}/o']),
        (
            'infer.py',
            ['{tmp}', '--model', '{tmp}/m.pth', '--config', '{url}/c.py', '--out-dir', 'o'],
        ),
    ],
    ids=['test checkpoint', 'infer checkpoint', 'infer export', 'infer config'],
)
def test_tools_refuse_urls(tmp_path, server, tool, argv, monkeypatch, capsys):
    url, hits = server
    config = str(tmp_path / 'toy.py')
    Config(toy_runner_cfg(str(tmp_path / 'run'))).dump(config)
    (tmp_path / 'a.png').write_bytes(b'')  # the image is never read
    argv = [a.format(url=url, config=config, tmp=tmp_path) for a in argv]
    monkeypatch.setattr(sys, 'argv', [tool, *argv])
    monkeypatch.delenv('UDA_DEBUG', raising=False)
    main = runpy.run_path(os.path.join(ROOT, 'tools', tool), run_name='tool')['main']
    with pytest.raises(SystemExit) as code:
        run_tool(main)
    err = capsys.readouterr().err
    assert code.value.code == 2 and err.startswith('error: ') and 'is a URL' in err
    assert url in err and 'Traceback' not in err
    assert hits == []
