"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT [--work-dir DIR]``.

Writes to the work dir: ``metrics.json`` (mIoU, per-class IoU, accuracies), ``per_class.md``
(the per-class table, also printed), ``confusion_matrix.png``, coloured predictions
(``pred/``) and overlays (``overlay/``), and with ``--labelids`` Cityscapes labelIds PNGs
(``labelIds/``) for the official ``cityscapesscripts`` evaluation. The inference mode comes
from ``model.test_cfg`` (whole / slide / aug) over the dataset base's ``inference_cfg``
(slide windows); ``--mode`` and ``--which`` override both.
"""

import argparse
import os.path as osp
import sys

from mmengine.config import DictAction

import uda.engine  # noqa: F401  (torch>=2.6 checkpoint loader)
from uda.engine.checkpoint import (
    CheckpointError,
    check_weights_fit,
    segmentor_weights,
    state_dict_of,
)
from uda.engine.config import build_checked_runner, load_config, run_tool
from uda.engine.dist import prepare_distributed
from uda.evaluation.inference import resolve_test_cfg
from uda.evaluation.report_files import write_report_files
from uda.models.layouts import apply_foreign_config, foreign_meta, read_checkpoint
from uda.models.segmentor import architecture_only


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Evaluate a checkpoint on the test set.')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file (.pth)')
    parser.add_argument('--work-dir', help='folder for metrics.json and predictions')
    parser.add_argument(
        '--mode',
        choices=['whole', 'slide', 'aug'],
        help='inference mode (default: model.test_cfg.mode, else whole)',
    )
    parser.add_argument(
        '--which',
        choices=['student', 'teacher'],
        help='network of the checkpoint to evaluate (default: student)',
    )
    parser.add_argument(
        '--labelids',
        action='store_true',
        help='also write Cityscapes labelIds PNGs to WORK_DIR/labelIds',
    )
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        default={},
        help='override config keys, e.g. model.test_cfg.stride=256',
    )
    parser.add_argument(
        '--max-pred-images',
        type=int,
        default=None,
        help='write at most this many coloured predictions (default: all)',
    )
    parser.add_argument(
        '--layout',
        default='auto',
        help="layout of a foreign checkpoint (da-sac, ADVENT ... files; default 'auto'), "
        'see docs/converting_checkpoints.md',
    )
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher (pytorch = torchrun)',
    )
    parser.add_argument(
        '--local-rank', '--local_rank', type=int, default=0, help='set by the launcher'
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    try:  # before building anything: a missing or truncated file is one message
        ckpt = read_checkpoint(args.checkpoint, args.layout)  # foreign files: converted
    except (FileNotFoundError, CheckpointError) as err:
        sys.exit(f'tools/test.py: {err}')
    given = state_dict_of(ckpt)
    cfg = load_config(args.config, args.cfg_options, args.work_dir, None, args.launcher)
    foreign = foreign_meta(ckpt)
    if foreign is not None:  # the authors' network and preprocessing, not the config's
        print(apply_foreign_config(cfg, foreign))
    if args.work_dir is None:
        cfg.work_dir = osp.join(cfg.work_dir, 'test')
        cfg.test_evaluator['out_file'] = osp.join(cfg.work_dir, 'metrics.json')
    # The dataset base's slide windows (inference_cfg), then model.test_cfg, then the flags.
    cfg.model['test_cfg'] = resolve_test_cfg(cfg, dict(mode=args.mode, which=args.which))
    cfg.load_from, cfg.resume = args.checkpoint, False
    # The checkpoint holds every weight: no SSL encoder file or download is read first.
    if 'segmentor' in cfg.model:
        cfg.model['segmentor'] = architecture_only(cfg.model['segmentor'])
    # The metric's protocol; a DomainEvaluator (several domains) holds it in its `metrics`.
    metric_cfg = cfg.test_evaluator.get('metrics') or cfg.test_evaluator
    protocol = metric_cfg.get('protocol', 'cityscapes19')
    cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [
        dict(
            type='PredictionWriterHook',
            out_dir=cfg.work_dir,
            protocol=protocol,
            max_images=args.max_pred_images,
            labelid_dir=osp.join(cfg.work_dir, 'labelIds') if args.labelids else None,
        )
    ]
    prepare_distributed(cfg)  # --launcher pytorch: the Adapter's wrapper; gloo without CUDA
    runner = build_checked_runner(cfg, ('test',), args.config)
    # mmengine only warns on mismatching weights; evaluating random layers must be an error.
    model = runner.model.module if hasattr(runner.model, 'module') else runner.model
    which = model.test_cfg['which']  # only the evaluated network must fit
    model.segmentor_for(which)  # a clear error when the method has no such network
    check_weights_fit(
        segmentor_weights(model.state_dict(), which, args.config),
        segmentor_weights(given, which, args.checkpoint),
        args.checkpoint,
        args.config,
    )
    runner.test()
    if runner.rank == 0:
        metric = runner.test_evaluator.metrics[0]
        write_report_files(
            cfg.test_evaluator['out_file'],
            cfg.work_dir,
            getattr(metric, 'last_confusion', None),
            protocol,
            getattr(metric, 'eval_ids', None),
        )


if __name__ == '__main__':
    run_tool(main)  # known errors: `error: <message>`, exit 2 (UDA_DEBUG=1: the traceback)
