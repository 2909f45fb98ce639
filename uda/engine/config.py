"""Config loading shared by the tools: ``--cfg-options``, work dir, seed, output files."""

from __future__ import annotations

import os
import os.path as osp
from typing import Any, Optional

from mmengine.config import Config

# Keys the mmengine Runner reads from a config (Runner.from_cfg); any config may set them.
RUNNER_KEYS = {
    'model',
    'work_dir',
    'train_dataloader',
    'val_dataloader',
    'test_dataloader',
    'train_cfg',
    'val_cfg',
    'test_cfg',
    'auto_scale_lr',
    'optim_wrapper',
    'param_scheduler',
    'val_evaluator',
    'test_evaluator',
    'default_hooks',
    'custom_hooks',
    'data_preprocessor',
    'load_from',
    'resume',
    'launcher',
    'env_cfg',
    'log_processor',
    'log_level',
    'visualizer',
    'default_scope',
    'randomness',
    'experiment_name',
    'cfg',
    'model_wrapper_cfg',
}


def check_cfg_options(cfg: Config, options: Optional[dict], config_path: str) -> None:
    """Reject ``--cfg-options`` keys whose parent path does not exist in the config.

    A typo such as ``train_cfg.max_iter`` would otherwise be silently added and ignored; a
    new leaf under an existing dict (``model.segmentor.aux_head``) is allowed.
    """
    for key in options or {}:
        parts = key.split('.')
        if parts[0] not in cfg and parts[0] not in RUNNER_KEYS:
            raise KeyError(
                f"--cfg-options key '{key}': '{parts[0]}' is not a key of "
                f'{config_path}. Known top-level keys: {sorted(cfg.keys())}.'
            )
        node: Any = cfg
        for depth, part in enumerate(parts[:-1]):
            if isinstance(node, (list, tuple)) and part.isdigit():
                node = node[int(part)]
                continue
            if not hasattr(node, 'keys') or part not in node:
                where = '.'.join(parts[:depth]) or '(top level)'
                known = sorted(node.keys()) if hasattr(node, 'keys') else type(node).__name__
                raise KeyError(
                    f"--cfg-options key '{key}': '{part}' is not under {where} in "
                    f'{config_path}; it holds {known}.'
                )
            node = node[part]


def load_config(
    config: str,
    cfg_options: Optional[dict] = None,
    work_dir: Optional[str] = None,
    seed: Optional[int] = None,
    launcher: str = 'none',
) -> Config:
    """Read a config, apply overrides, and set the work dir and metrics file."""
    if not osp.isfile(config):
        raise FileNotFoundError(
            f'Config file not found: {config}. Configs live under configs/, '
            'e.g. configs/demo/abn_unet-resnet18_400it_synthetic-96x192.py.'
        )
    cfg = Config.fromfile(config)
    if cfg_options:
        check_cfg_options(cfg, cfg_options, config)
        cfg.merge_from_dict(cfg_options)
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs', osp.splitext(osp.basename(config))[0])
    if seed is not None:
        cfg.randomness = dict(cfg.get('randomness') or {}, seed=seed)
    metrics_file = osp.join(cfg.work_dir, 'metrics.json')
    for key in ('val_evaluator', 'test_evaluator'):
        ev = cfg.get(key)
        if isinstance(ev, dict) and ev.get('type') == 'IoUMetric' and not ev.get('out_file'):
            ev['out_file'] = metrics_file
    os.makedirs(cfg.work_dir, exist_ok=True)
    return cfg
