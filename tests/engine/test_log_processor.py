"""The console line shows the adapter's console keys; TensorBoard gets every scalar."""

import glob
import json
import os

from mmengine.config import Config
from mmengine.runner import Runner

import uda.engine  # noqa: F401  (registers ConsoleLogProcessor)
from tests.conftest import toy_runner_cfg


def test_console_line_shows_the_term_losses_and_tensorboard_every_scalar(tmp_path):
    cfg = toy_runner_cfg(
        str(tmp_path),
        max_iters=2,
        val_interval=2,
        terms=dict(src=dict(type='SourceCE'), stats=dict(type='PredictionStatistics')),
    )
    cfg['log_processor'] = dict(type='ConsoleLogProcessor', by_epoch=False)
    cfg['log_level'] = 'INFO'
    runner = Runner.from_cfg(Config(cfg))
    assert runner.model.console_keys() == ['loss', 'src.loss', 'stats.loss']
    runner.train()
    (log_file,) = glob.glob(os.path.join(str(tmp_path), '*', '*.log'))
    lines = [ln for ln in open(log_file) if 'Iter(train)' in ln]
    assert lines and all('src.loss:' in ln and ' lr:' in ln and 'time:' in ln for ln in lines)
    assert not any('stats.entropy' in ln or 'src.loss_ce' in ln for ln in lines)
    (scalars,) = glob.glob(os.path.join(str(tmp_path), '*', 'vis_data', 'scalars.json'))
    logged = [json.loads(ln) for ln in open(scalars) if '"loss"' in ln]
    assert all({'src.loss_ce', 'stats.entropy', 'stats.class_entropy'} <= set(d) for d in logged)
