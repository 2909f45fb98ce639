"""Convert an author's released checkpoint (da-sac, ADVENT, AdaptSegNet, DAFormer ...) to uda's.

    python tools/convert_checkpoint.py IN.pth OUT.pth [--layout auto|dasac|advent|adaptsegnet|...]

OUT holds ``state_dict`` (``student.*``, and ``teacher.net.*`` where the file has a momentum
teacher) and ``meta['foreign']``: the layout, the segmentor config the weights fit and the
reference preprocessing, which ``tools/test.py``, ``tools/infer.py``, ``tools/export.py`` and
``load_from`` apply. The tool fails and writes nothing unless every network weight comes from
the file and every file weight has a place (docs/converting_checkpoints.md lists the layouts).
The tools also read IN directly; converting once saves the detection on every run.
"""

from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from uda.engine.checkpoint import commit_file  # noqa: E402
from uda.engine.config import run_tool  # noqa: E402
from uda.models.layouts import layout_names, load_foreign_checkpoint  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('input', help="the authors' checkpoint file")
    parser.add_argument('output', help='uda checkpoint to write')
    parser.add_argument(
        '--layout',
        default='auto',
        help=f'auto (detect) or one of {", ".join(n.lower() for n in layout_names())}',
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if osp.abspath(args.input) == osp.abspath(args.output):
        raise ValueError(f'{args.output}: give an output path other than the input.')
    conv, line = load_foreign_checkpoint(args.input, args.layout)
    ckpt = conv.uda_checkpoint(osp.abspath(args.input))
    os.makedirs(osp.dirname(osp.abspath(args.output)), exist_ok=True)
    tmp = f'{args.output}.tmp'
    torch.save(ckpt, tmp)
    commit_file(tmp, args.output)  # never a half-written OUT
    foreign = ckpt['meta']['foreign']
    print(line)
    print(f'-> {args.output}')
    print(f'network: {json.dumps(foreign["segmentor"])}')
    print(f'preprocessing: {foreign["preprocessing"]}')
    print(f'data_preprocessor: {json.dumps(foreign["data_preprocessor"])}')


if __name__ == '__main__':
    run_tool(main)  # known errors: `error: <message>`, exit 2 (UDA_DEBUG=1: the traceback)
