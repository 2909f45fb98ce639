"""uda's SAC and ABN training steps against the reference SAC step (visinf/da-sac), one process.

Identical network (DeepLab-v2 ResNet-101, 19 classes, no pretrained weights), batch (2 source
images + 1 target image x 4 views), crop and thread count. The reference is imported from a
local copy of its repository given on the command line (never part of uda)::

    git --git-dir=<fetched da-sac> archive HEAD | tar -x -C /tmp/da-sac   # or a git clone
    OMP_NUM_THREADS=1 python benchmarks/reference_step.py --reference /tmp/da-sac --steps 3

The reference step is its ``train.py`` ``Trainer.step`` + ``_step_target`` (source CE
backward without an optimiser step, then the target forward of ``models/sac.py`` ``SAC``: the
student on the noised views, the slow net on the clean views, fusion, focal CE, backward, one
SGD step), with BatchNorm frozen (``freeze_bn`` when not ``BASELINE``). Its views and
photometric noise come from its data loader (``datasets/dataloader_target.py``), so they are
inputs here; uda's step cuts its views and adds the noise itself, inside the timed step.

Printed: median seconds per step of each (uda fp32 / bf16 for SAC and ABN, reference fp32 and,
with ``--reference-bf16``, the reference under the same CPU autocast), the ratio
reference / uda, and where the time goes: the bare network passes of the SAC step (student
forward + backward on the source batch and on the views, teacher forward on the views) timed
alone on uda's network, and the rest of the step.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import re
import statistics
import sys
from types import SimpleNamespace
from typing import Any, Callable

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, 'benchmarks'))

from step_bench import build, load, random_batch, time_steps  # noqa: E402

from uda.engine.config import add_device_argument  # noqa: E402

SAC_CONFIG = 'configs/sac/sac_deeplabv2-resnet101_40k_gta2cityscapes-512x512.py'


@torch.no_grad()
def calibrate_bn(net: torch.nn.Module, size: tuple[int, int], forward: Callable) -> None:
    """BatchNorm running statistics of ``net`` from two random batches, in place of the
    ImageNet weights neither side may download: both train with BatchNorm frozen, and a
    from-scratch ResNet-101 with unit running variances overflows to NaN within one step."""
    bns = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, m.training) for m in bns]
    g = torch.Generator().manual_seed(123)
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
        m.train()
    device = next(net.parameters()).device
    for _ in range(2):
        forward(torch.randn(2, 3, *size, generator=g).to(device))
    for m, (momentum, training) in zip(bns, saved):
        m.momentum = momentum
        m.train(training)


def _autocast(amp: str | None, device: str) -> Any:
    """bf16 autocast on the device's type, or nothing."""
    if amp != 'bf16':
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def uda_cfg(method: str, amp: str | None, device: str = 'cpu') -> Any:
    """The reference SAC config at 1 target image x 4 views (ABN: its source term alone with
    target-only BatchNorm statistics, no teacher)."""
    cfg = load(os.path.join(ROOT, SAC_CONFIG), amp=amp, device=device)
    cfg.model.labellers.sac.num_images = 1
    cfg.model.terms.sac.log_per_class = False
    if method == 'abn':
        cfg.model.terms = dict(src=cfg.model.terms.src)
        cfg.model.labellers = None
        cfg.model.pop('teacher')
        cfg.model.bn_policy = [dict(mode='target_only', branch='target')]
    return cfg


def time_uda(method: str, amp: str | None, args: argparse.Namespace) -> dict[str, float]:
    torch.manual_seed(0)
    model, wrapper, _ = build(uda_cfg(method, amp, args.device), args.device)
    size = tuple(args.size)
    calibrate_bn(model.student, size, model.student)
    if model.teacher is not None:
        model.teacher.init_from(model.student)
    # Source 2 images; target: the SAC labeller uses the first (num_images=1), ABN all 2.
    times = time_steps(
        lambda i: model.train_step(random_batch(['source', 'target'], 2, size, i), wrapper),
        args.steps,
        args.warmup,
        args.device,
        args.clock,
    )
    out = dict(step_s=statistics.median(times))
    if method == 'sac':
        out.update(uda_passes(model, amp, args))
    return out


def uda_passes(model: Any, amp: str | None, args: argparse.Namespace) -> dict[str, float]:
    """The unavoidable passes of the SAC step on uda's network, timed alone."""
    h, w = args.size
    g = torch.Generator().manual_seed(0)
    dev = args.device
    src = torch.randn(2, 3, h, w, generator=g).to(dev)
    views = torch.randn(4, 3, h, w, generator=g).to(dev)
    gt = torch.randint(0, 19, (2, h, w), generator=g).to(dev)
    pl = torch.randint(0, 19, (4, h, w), generator=g).to(dev)
    ctx = _autocast(amp, dev)

    def fwd_bwd(x: torch.Tensor, y: torch.Tensor) -> None:
        with ctx:
            logits = model.student(x)
        F.cross_entropy(logits.float(), y, ignore_index=255).backward()

    def teacher() -> None:
        with torch.no_grad(), ctx:
            model.teacher(views)

    parts: dict[str, Callable[[], None]] = dict(
        src_fb=lambda: fwd_bwd(src, gt), views_fb=lambda: fwd_bwd(views, pl), teacher_f=teacher
    )
    res = {}
    for name, fn in parts.items():
        res[name] = statistics.median(
            time_steps(lambda i, fn=fn: fn(), args.steps, 1, args.device, args.clock)
        )
        model.student.zero_grad(set_to_none=True)
    res['passes_s'] = res['src_fb'] + res['views_fb'] + res['teacher_f']
    return res


def reference_cfg(path: str) -> SimpleNamespace:
    """The reference's MODEL settings: the defaults of its ``core/config.py`` (read as text: that
    module needs ``six``, which uda does not) overridden by ``configs/
    deeplabv2_resnet101_train.yaml`` (LR 2.5e-4, LR_TARGET 5, weight decay 5e-4)."""
    import yaml

    values: dict[str, Any] = {}
    with open(os.path.join(path, 'core', 'config.py')) as f:
        for line in f:
            m = re.match(r'__C\.MODEL\.(\w+)\s*=\s*(.+?)\s*(#.*)?$', line)
            if m:
                values[m.group(1)] = ast.literal_eval(m.group(2))
    yaml_path = os.path.join(path, 'configs', 'deeplabv2_resnet101_train.yaml')
    if os.path.isfile(yaml_path):
        with open(yaml_path) as f:
            values.update(yaml.safe_load(f).get('MODEL', {}))
    values.update(ARCH='deeplabv2_resnet101', INIT_MODEL='', BASELINE=False)
    return SimpleNamespace(**values)


def reference_model(path: str) -> tuple[Any, Any, SimpleNamespace]:
    """visinf/da-sac's SAC model (DeepLab-v2 ResNet-101, from scratch) and its SGD optimiser
    (``base_trainer.py`` ``get_optim``)."""
    if not os.path.isfile(os.path.join(path, 'models', 'sac.py')):
        raise SystemExit(
            f'--reference {path}: no models/sac.py there; give a checkout of visinf/da-sac.'
        )
    cfg = reference_cfg(path)
    sys.path.insert(0, path)
    from models import get_model  # type: ignore[import-not-found]

    with contextlib.redirect_stdout(sys.stderr):  # the reference prints as it builds
        net = get_model(cfg, 0, num_classes=19)
        params = net.parameter_groups(cfg.LR, cfg.WEIGHT_DECAY)
    net.train()
    optim = torch.optim.SGD(
        params,
        lr=cfg.LR,
        momentum=cfg.MOMENTUM,
        nesterov=cfg.OPT_NESTEROV,
        weight_decay=cfg.WEIGHT_DECAY,
    )
    return net, optim, cfg


def time_reference(path: str, amp: str | None, args: argparse.Namespace) -> dict[str, float]:
    torch.manual_seed(0)
    net, optim, cfg = reference_model(path)
    dev = args.device
    net.to(dev)
    h, w = args.size
    calibrate_bn(net.backbone, (h, w), net.backbone)  # the slow net copies it at step 1
    T = 4  # GROUP_SIZE (views per target image), 1 group
    eye = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).expand(T, 2, 3).contiguous().to(dev)
    ctx = _autocast(amp, dev)

    def step(i: int) -> None:
        g = torch.Generator().manual_seed(i)
        image, gt = (
            torch.randn(2, 3, h, w, generator=g),
            torch.randint(0, 19, (2, h, w), generator=g),
        )
        frames1, frames2 = (
            torch.randn(T, 3, h, w, generator=g),
            torch.randn(T, 3, h, w, generator=g),
        )
        frames_gt = torch.zeros(T, h, w, dtype=torch.long)
        image, gt, frames1, frames2, frames_gt = (
            t.to(dev) for t in (image, gt, frames1, frames2, frames_gt)
        )
        optim.zero_grad()
        with ctx:  # Trainer.step (source, no optimiser step when not BASELINE)
            losses, _ = net(image, gt)
        losses['loss_ce'].float().mean().backward()
        with ctx:  # Trainer._step_target
            losses, _ = net(frames1, frames_gt, frames2, eye, eye, use_teacher=True, T=T)
        (cfg.LR_TARGET * losses['self_ce'].float().mean()).backward()
        optim.step()

    with contextlib.redirect_stdout(sys.stderr):
        times = time_steps(step, args.steps, args.warmup, args.device, args.clock)
    return dict(step_s=statistics.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--reference', required=True, help='local checkout of visinf/da-sac')
    parser.add_argument('--steps', type=int, default=3, help='timed steps')
    parser.add_argument('--warmup', type=int, default=1, help='untimed steps first')
    parser.add_argument(
        '--size', type=int, nargs=2, default=(128, 256), metavar=('H', 'W'), help='crop size'
    )
    parser.add_argument(
        '--reference-bf16',
        action='store_true',
        help='also the reference under CPU autocast (its code is not autocast-safe: '
        'models/sac.py _update_running_conf mixes fp32 and bf16; reported, then skipped)',
    )
    parser.add_argument('--skip-abn', action='store_true', help='time the SAC step only')
    add_device_argument(parser, default='cpu')  # 'cuda' on a GPU (gpu_check.sh; --clock wall)
    parser.add_argument(
        '--clock',
        choices=['wall', 'cpu'],
        default='cpu',
        help='cpu (default): process CPU time, the compute time at 1 thread on a shared '
        'machine; wall: elapsed time (use with more threads on an idle machine)',
    )
    args = parser.parse_args()
    if 'OMP_NUM_THREADS' not in os.environ:
        torch.set_num_threads(1)
    rows: dict[str, dict[str, float]] = {}
    rows['reference SAC fp32'] = time_reference(args.reference, None, args)
    if args.reference_bf16:
        try:
            rows['reference SAC bf16'] = time_reference(args.reference, 'bf16', args)
        except RuntimeError as e:  # its class-prior update mixes dtypes (models/sac.py)
            print(f'reference SAC does not run under bf16 autocast: {e}', file=sys.stderr)
    rows['uda SAC fp32'] = time_uda('sac', None, args)
    rows['uda SAC bf16'] = time_uda('sac', 'bf16', args)
    if not args.skip_abn:
        rows['uda ABN fp32'] = time_uda('abn', None, args)
        rows['uda ABN bf16'] = time_uda('abn', 'bf16', args)
    ref = rows['reference SAC fp32']['step_s']
    print(
        f'\nDeepLab-v2 ResNet-101, 2 source + 1 target x 4 views at {args.size[0]}x{args.size[1]}'
        f', {torch.get_num_threads()} thread(s), median of {args.steps} steps, {args.clock} time'
    )
    print('| step | s | reference SAC fp32 / this |\n|---|---:|---:|')
    for name, r in rows.items():
        print(f'| {name} | {r["step_s"]:.2f} | {ref / r["step_s"]:.2f} |')
    for amp in ('fp32', 'bf16'):
        r = rows[f'uda SAC {amp}']
        print(
            f'\nuda SAC {amp}, where the time goes: passes {r["passes_s"]:.2f} s '
            f'(student fwd+bwd source {r["src_fb"]:.2f}, views {r["views_fb"]:.2f}, teacher '
            f'fwd views {r["teacher_f"]:.2f}); rest of the step (views, noise, fusion, '
            f'thresholds, losses, optimiser) {r["step_s"] - r["passes_s"]:.2f} s '
            f'({100 * (r["step_s"] - r["passes_s"]) / r["step_s"]:.0f} %)'
        )
    print(json.dumps(rows))


if __name__ == '__main__':
    main()
