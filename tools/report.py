"""Aggregate runs (seeds) into mean ± std per class and overall, as Markdown.

``python tools/report.py WORK_DIR [WORK_DIR ...] [--title T] [--out report.md]``

Each WORK_DIR is a work dir holding one metrics.json (searched recursively) or the file itself.
"""

import argparse
import os.path as osp

from uda.evaluation.seed_report import seed_report


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Mean ± std over runs of metrics.json.')
    parser.add_argument('work_dirs', nargs='+', help='work dirs or metrics.json files')
    parser.add_argument('--title', help='heading of the table')
    parser.add_argument('--out', help='also write the Markdown to this file')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    markdown, _ = seed_report(args.work_dirs, args.title)
    print(markdown)
    if args.out:
        if osp.isdir(args.out):
            raise IsADirectoryError(
                f'--out {args.out} is a directory; give a file name such as '
                f'{osp.join(args.out, "report.md")}.'
            )
        with open(args.out, 'w') as f:
            f.write(markdown)


if __name__ == '__main__':
    main()
