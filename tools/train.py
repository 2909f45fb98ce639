"""Train a model from a config: ``python tools/train.py CONFIG [--work-dir DIR] ...``."""

import argparse

from mmengine.config import Config
from mmengine.runner import Runner

import uda.engine  # noqa: F401  (torch>=2.6 checkpoint loader for --resume)
from uda.engine.amp import apply_amp
from uda.engine.config import (
    build_checked_runner,
    load_training_config,
    run_tool,
    training_parser,
)
from uda.engine.dist import prepare_distributed
from uda.engine.work_dir_lock import work_dir_lock
from uda.evaluation.run_summary import training_summary
from uda.models.layouts import check_load_from


def parse_args() -> argparse.Namespace:
    parser = training_parser(
        'Train a segmentation / adaptation model.', 'folder for logs, checkpoints and metrics.json'
    )
    parser.add_argument(
        '--amp',
        choices=['bf16', 'fp16'],
        default=None,
        help='mixed precision for every optimiser wrapper (the config key `amp`; GPU: '
        "mmengine's AmpOptimWrapper, CPU: autocast, bf16 there)",
    )
    return parser.parse_args()


def preflight(cfg: Config, config_path: str) -> Runner:
    """Build the Runner after the checks that must fail before the first iteration.

    Unknown keys in the model, datasets, hooks, optimiser and schedules (a typo such as
    ``default_hooks.checkpoint.intervall`` would otherwise fail at the first checkpoint save),
    then the model's class count against the labelled datasets' and the evaluator's protocols.
    """
    return build_checked_runner(cfg, ('train', 'val'), config_path)


def main() -> None:
    args = parse_args()
    cfg = load_training_config(args)
    check_load_from(cfg)  # a foreign warm start: the config builds the authors' network
    apply_amp(cfg, args.amp)  # --amp, else the config's `amp` key
    # One run per work folder: a second one stops with an error naming the first; the lock
    # goes with this run (exit, exception, SIGTERM), a killed run's is taken over.
    with work_dir_lock(cfg.work_dir):
        prepare_distributed(cfg)  # the adapter's DDP wrapper; gloo when there is no CUDA
        runner = preflight(cfg, args.config)
        runner.train()
    if runner.rank == 0:  # every validation, the warm-up start vs the adapted model, metrics
        for line in training_summary(cfg.work_dir, runner.log_dir, cfg.model):
            print(line)


if __name__ == '__main__':
    run_tool(main)  # known errors: `error: <message>`, exit 2 (UDA_DEBUG=1: the traceback)
