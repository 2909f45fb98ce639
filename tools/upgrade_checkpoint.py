"""Convert a checkpoint of the positional-terms layout to named terms (one-off).

    python tools/upgrade_checkpoint.py CONFIG OLD.pth NEW.pth

CONFIG is the current config of the run (its ``model.terms`` names); the key mapping is
documented in :func:`uda.engine.checkpoint.upgrade_state_dict`. The new file loads strictly
into the model built from CONFIG, or this tool fails and writes nothing.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
from mmengine.registry import DefaultScope

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from uda.engine.checkpoint import load_checkpoint_file, upgrade_state_dict  # noqa: E402
from uda.engine.config import read_config  # noqa: E402
from uda.models.segmentor import architecture_only  # noqa: E402
from uda.registry import MODELS  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config the checkpoint was trained with')
    parser.add_argument('old', help='checkpoint written before terms had names')
    parser.add_argument('new', help='upgraded checkpoint to write')
    args = parser.parse_args(argv)
    cfg = read_config(args.config)
    ckpt = load_checkpoint_file(args.old, 'cpu')
    state = ckpt['state_dict'] if 'state_dict' in ckpt else ckpt
    new_state = upgrade_state_dict(state, dict(cfg.model.terms), cfg.model.get('labellers'))
    cfg.model['segmentor'] = architecture_only(cfg.model['segmentor'])  # no init file read
    with DefaultScope.overwrite_default_scope('uda'):
        model = MODELS.build(cfg.model)
    model.load_state_dict(new_state, strict=True)  # fails with the keys that do not fit
    if 'state_dict' in ckpt:
        ckpt['state_dict'] = new_state
        # Optimiser states keep their order but not their names: resume needs no change.
    else:
        ckpt = new_state
    torch.save(ckpt, args.new)
    print(f'{args.old} -> {args.new}: {len(new_state)} weights, loads strictly into {args.config}')


if __name__ == '__main__':
    main()
