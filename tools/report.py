"""Aggregate runs (seeds) into mean ± std per class and overall, as Markdown, and pictures.

``python tools/report.py WORK_DIR [WORK_DIR ...] [--title T] [--out report.md]
[--baseline BASE_DIR ...]``

Each WORK_DIR is a work dir holding one metrics.json (searched recursively) or the file itself.
Runs validated on several domains (``cityscapes/mIoU``, ``camvid-dusk/mIoU``, ...:
uda/evaluation/domains.py) get one table and one ``report_curves_<domain>.png`` per domain (the
delta picture compares the first domain's classes).
With ``--out report.md`` the pictures go beside it: ``report_curves.png`` (validation mIoU
against the iteration, mean ± std band over the runs, from their logged validations) and, with
``--baseline`` (one work dir per run, same seed order), ``report_delta.png`` (per-class IoU
change paired by seed).
"""

import argparse
import json
import os.path as osp

from uda.evaluation.domains import domain_names
from uda.evaluation.seed_plots import plot_class_deltas, plot_curves
from uda.evaluation.seed_report import find_metrics, seed_report


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Mean ± std over runs of metrics.json.')
    parser.add_argument('work_dirs', nargs='+', help='work dirs or metrics.json files')
    parser.add_argument('--title', help='heading of the table and label of the curve')
    parser.add_argument(
        '--out', help='also write the Markdown to this file, and the PNG pictures beside it'
    )
    parser.add_argument(
        '--baseline',
        nargs='+',
        metavar='BASE_DIR',
        help='work dirs of the baseline, one per run in the same seed order: per-class deltas',
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.out and osp.isdir(args.out):
        raise IsADirectoryError(
            f'--out {args.out} is a directory; give a file name such as '
            f'{osp.join(args.out, "report.md")}.'
        )
    with open(find_metrics(args.work_dirs[0])) as f:
        domains = domain_names(json.load(f))
    if domains:  # one table per validation domain, named by it
        markdown = '\n'.join(
            seed_report(args.work_dirs, f'{args.title or "runs"}: {d}', d)[0] for d in domains
        )
    else:
        markdown, _ = seed_report(args.work_dirs, args.title)
    if args.out:
        stem = osp.splitext(args.out)[0]
        name = args.title or 'runs'
        if domains:  # one curve picture per domain, of its '<domain>/mIoU'
            pictures = [
                plot_curves({name: args.work_dirs}, f'{stem}_curves_{d}.png', key=f'{d}/mIoU')
                for d in domains
            ]
        else:
            pictures = [plot_curves({name: args.work_dirs}, f'{stem}_curves.png')]
        if args.baseline:
            pictures.append(
                plot_class_deltas({name: args.work_dirs}, args.baseline, f'{stem}_delta.png')
            )
        for png in filter(None, pictures):
            markdown += f'\n![{osp.basename(png)}]({osp.basename(png)})\n'
        with open(args.out, 'w') as f:
            f.write(markdown)
    print(markdown)


if __name__ == '__main__':
    main()
