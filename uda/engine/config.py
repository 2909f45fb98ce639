"""Config loading shared by the tools: ``--cfg-options``, work dir, seed, output files, and the
checks that run before training (unknown keys, class counts) with the tools' error printing."""

from __future__ import annotations

import argparse
import ast
import difflib
import inspect
import os
import os.path as osp
import re
import sys
import textwrap
from typing import Any, Callable, Optional, Sequence

from mmengine.config import Config, DictAction
from mmengine.optim import DefaultOptimWrapperConstructor
from torch.utils.data import DataLoader

from uda.engine.checkpoint import refuse_url
from uda.engine.determinism import after_runner_built, apply_determinism, determinism_message
from uda.engine.rank_failure import describe_rank_failure, is_collective_failure
from uda.models.weights import skip_init_for_warm_start
from uda.registry import (
    DATA_SAMPLERS,
    DATASETS,
    HOOKS,
    LABELLERS,
    METRICS,
    MODELS,
    OPTIM_WRAPPER_CONSTRUCTORS,
    OPTIM_WRAPPERS,
    OPTIMIZERS,
    PARAM_SCHEDULERS,
    TERMS,
)

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
    'sync_bn',
}
# Keys uda's tools read from a config besides the Runner's (uda.engine.amp.apply_amp,
# uda.engine.dist.apply_total_batch).
TOOL_KEYS = {'amp', 'total_batch_size'}


def check_cfg_options(cfg: Config, options: Optional[dict], config_path: str) -> None:
    """Reject ``--cfg-options`` keys whose parent path does not exist in the config.

    A typo such as ``train_cfg.max_iter`` would otherwise be silently added and ignored; a
    new leaf under an existing dict (``model.segmentor.aux_head``) is allowed.
    """
    for key in options or {}:
        parts = key.split('.')
        if parts[0] not in cfg and parts[0] not in RUNNER_KEYS | TOOL_KEYS:
            raise KeyError(
                f"--cfg-options key '{key}': '{parts[0]}' is not a key of "
                f'{config_path}. Known top-level keys: {sorted(cfg.keys())}.'
            )
        node: Any = cfg
        for depth, part in enumerate(parts[:-1]):
            if isinstance(node, (list, tuple)) and part.isdigit():
                node = node[int(part)]
                continue
            if hasattr(node, 'keys') and part not in node and _takes(node, part):
                break  # a new dict argument (model.segmentor.freeze.encoder=True)
            if not hasattr(node, 'keys') or part not in node:
                where = '.'.join(parts[:depth]) or '(top level)'
                known = sorted(node.keys()) if hasattr(node, 'keys') else type(node).__name__
                raise KeyError(
                    f"--cfg-options key '{key}': '{part}' is not under {where} in "
                    f'{config_path}; it holds {known}.'
                )
            node = node[part]


def _takes(node: Any, key: str) -> bool:
    """Whether the model class named by ``node['type']`` takes keyword ``key`` (or ``key``
    is the ``paramwise_cfg`` of an optimiser wrapper, read by its constructor)."""
    if key == 'paramwise_cfg' and 'optimizer' in node:
        return True
    cls = _lookup(MODELS, node.get('type'))
    return cls is not None and key in inspect.signature(cls).parameters


def training_parser(description: str, work_dir_help: str) -> argparse.ArgumentParser:
    """The command line shared by ``tools/train.py`` and ``tools/pretrain.py``: config,
    ``--work-dir``, ``--cfg-options``, ``--resume [PATH]``, ``--seed``, ``--launcher``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('config', help='config file')
    parser.add_argument('--work-dir', help=work_dir_help)
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        default={},
        help='override config keys, e.g. train_cfg.max_iters=100',
    )
    parser.add_argument(
        '--resume',
        nargs='?',
        const='auto',
        default=None,
        help='resume from the latest checkpoint in the work dir, or from PATH',
    )
    parser.add_argument('--seed', type=int, default=None, help='random seed')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher (pytorch = torchrun, DDP)',
    )
    parser.add_argument(
        '--local-rank', '--local_rank', type=int, default=0, help='set by the launcher'
    )
    return parser


_DEVICE = re.compile(r'^(auto|cpu|mps|cuda(:\d+)?)$')


def resolve_device(name: str) -> str:
    """The torch device of a ``--device`` value: ``auto`` is ``cuda`` when CUDA is available,
    else ``cpu``; other names are checked and kept. The argparse ``type`` of ``--device``
    (argparse converts a string default too, so ``args.device`` is always a device)."""
    if not _DEVICE.match(name):
        raise argparse.ArgumentTypeError(
            f"{name!r} is not a torch device: give 'auto', 'cpu', 'cuda' or 'cuda:N'"
        )
    if name != 'auto':
        return name
    import torch

    return 'cuda' if torch.cuda.is_available() else 'cpu'


def add_device_argument(parser: argparse.ArgumentParser, default: str = 'auto') -> None:
    """``--device`` with one meaning in every tool and benchmark script: a torch device name
    (``cpu``, ``cuda``, ``cuda:N``) or ``auto``, the GPU when CUDA is available, else the CPU
    (the device mmengine's Runner picks for ``tools/train.py`` / ``tools/test.py``). Benchmark
    scripts keep ``cpu`` as their default so that a timing names the device it ran on."""
    parser.add_argument(
        '--device',
        type=resolve_device,
        default=default,
        help="torch device: 'cpu', 'cuda', 'cuda:N', or 'auto' (the GPU when CUDA is "
        f"available, else the CPU); default '{default}'",
    )


def load_training_config(args: argparse.Namespace) -> Config:
    """:func:`load_config` from :func:`training_parser` arguments, with ``--resume`` applied."""
    cfg = load_config(args.config, args.cfg_options, args.work_dir, args.seed, args.launcher)
    refuse_url(args.resume, '--resume')
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    skip_init_for_warm_start(cfg)  # load_from replaces the ImageNet / COCO init anyway
    return cfg


def load_config(
    config: str,
    cfg_options: Optional[dict] = None,
    work_dir: Optional[str] = None,
    seed: Optional[int] = None,
    launcher: str = 'none',
) -> Config:
    """Read a config, apply overrides, and set the work dir and metrics file.

    A config is Python and runs when it is read (as in every mmengine project), so only local
    files are read, and a ``load_from`` URL is refused (:func:`refuse_url`).
    """
    refuse_url(config, 'Config')
    if not osp.isfile(config):
        raise FileNotFoundError(
            f'Config file not found: {config}. Configs live under configs/, '
            'e.g. configs/demo/abn_unet-resnet18_400_synthetic-96x192.py.'
        )
    cfg = read_config(config)
    if cfg_options:
        check_cfg_options(cfg, cfg_options, config)
        cfg.merge_from_dict(cfg_options)
    refuse_url(cfg.get('load_from'), f'load_from of {config}:')
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
        # One metrics.json per run; a DomainEvaluator writes every domain's into it.
        if (
            isinstance(ev, dict)
            and ev.get('type') in ('IoUMetric', 'DomainEvaluator')
            and not ev.get('out_file')
        ):
            ev['out_file'] = metrics_file
    os.makedirs(cfg.work_dir, exist_ok=True)
    return cfg


class ConfigError(ValueError):
    """A config or its data does not fit: the message names the key or file and the fix."""


def read_config(config: str) -> Config:
    """``Config.fromfile``, with mmengine's error for two bases that define one key turned
    into one that names the fix. The common case: the schedules inherit
    ``configs/_base_/default_runtime.py`` (it holds the one ``default_hooks`` block they
    adjust), so a config that lists both gets every runtime key twice."""
    try:
        return Config.fromfile(config)
    except KeyError as err:
        message = str(err)
        if 'Duplicate key is not allowed among bases' not in message:
            raise
        keys = message[message.find('Duplicate keys:') :].rstrip('"\'')
        if 'default_scope' in message:
            raise ConfigError(
                f'{config}: two of its bases define the runtime ({keys}). The schedules '
                '(configs/_base_/schedules/*) inherit default_runtime.py: remove '
                "'../_base_/default_runtime.py' from _base_ and keep the schedule."
            ) from None
        raise ConfigError(
            f'{config}: two of its bases define the same top-level keys ({keys}); a key '
            'may come from one base only: keep one, or import the other as a variable.'
        ) from None


def _var_kw_target(init: Any, var_kw: str) -> str:
    """Where ``__init__`` sends its ``**var_kw``: 'super' (the next class's ``__init__``),
    'elsewhere' (another call: cannot be checked) or 'nowhere' (stored or dropped)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(init)))
    except (OSError, TypeError, SyntaxError):
        return 'elsewhere'
    target = 'nowhere'
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        if not any(
            k.arg is None and isinstance(k.value, ast.Name) and k.value.id == var_kw
            for k in node.keywords
        ):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == '__init__':
            target = 'super'
        else:
            return 'elsewhere'
    return target


def accepted_keys(cls: type) -> Optional[set[str]]:
    """Keyword arguments ``cls(...)`` accepts, or None when that cannot be known.

    ``**kwargs`` count only where they really reach a signature: passed on to the next
    ``__init__`` of the MRO (``super().__init__(**kwargs)``) adds that one's arguments;
    stored or dropped (mmengine's ``CheckpointHook`` keeps them for ``save_checkpoint``,
    which then fails at the first save) adds nothing; handed to another call makes the
    class unchecked (None).
    """
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get('__init__')
        if init is None:
            continue
        if klass is object:
            break
        try:
            params = list(inspect.signature(init).parameters.values())[1:]
        except (TypeError, ValueError):
            return None
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        names |= {p.name for p in params if p.kind in kinds}
        var_kw = [p.name for p in params if p.kind == inspect.Parameter.VAR_KEYWORD]
        if not var_kw:
            return names
        target = _var_kw_target(init, var_kw[0])
        if target == 'elsewhere':
            return None
        if target == 'nowhere':
            return names
    return names


def _lookup(registry: Any, type_: Any) -> Optional[type]:
    """The class a ``type=`` names, or None (unknown names fail later, in the registry)."""
    if inspect.isclass(type_):
        return type_
    if not isinstance(type_, str):
        return None
    try:
        obj = registry.get(type_)
    except KeyError:
        return None
    return obj if inspect.isclass(obj) else None


def _check_keys(
    cfg: Any,
    registry: Any,
    where: str,
    issues: list[str],
    default: Optional[str] = None,
    extra: Sequence[str] = (),
    injected: Sequence[str] = (),
) -> Optional[type]:
    """Append to ``issues`` each key of ``cfg`` that its class does not take.

    Args:
        extra: Keys the builder reads itself (``priority`` of a hook).
        injected: Arguments the builder passes (an optimiser's ``params``): not config keys.
    """
    if not isinstance(cfg, dict):
        return None
    cls = _lookup(registry, cfg.get('type', default))
    if cls is None:
        return None
    allowed = accepted_keys(cls)
    if allowed is None:
        return cls
    allowed = (allowed - set(injected)) | {'type', '_scope_', *extra}
    for key in cfg:
        if key in allowed:
            continue
        close = difflib.get_close_matches(key, sorted(allowed - {'_scope_'}), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ''
        takes = ', '.join(sorted(allowed - {'type', '_scope_'}))
        issues.append(
            f"{where}.{key}: {cls.__name__} has no option '{key}'{hint}; it takes {takes}."
        )
    return cls


def _check_model(cfg: Any, where: str, registry: Any, issues: list[str]) -> None:
    """A model config and the typed configs nested in it (segmentor, terms, labellers ...)."""
    if not isinstance(cfg, dict):
        return
    # A term's phase keys are read by the Adapter (uda/methods/adapter.py `_phase_of`).
    extra = ('start_iter', 'end_iter') if registry is TERMS else ()
    _check_keys(cfg, registry, where, issues, extra=extra)
    for key, value in cfg.items():
        sub = f'{where}.{key}'
        if key == 'init_cfg':  # weight initialisers, another registry
            continue
        if key in ('terms', 'labellers') and isinstance(value, dict):
            reg = TERMS if key == 'terms' else LABELLERS
            for name, item in value.items():
                _check_model(item, f'{sub}.{name}', reg, issues)
        elif isinstance(value, dict) and 'type' in value:
            _check_model(value, sub, MODELS, issues)


def _check_dataset(cfg: Any, where: str, issues: list[str]) -> None:
    if not isinstance(cfg, dict):
        return
    _check_keys(cfg, DATASETS, where, issues)
    for key, value in cfg.items():
        if key == 'pipeline':  # albumentations, checked by uda.data.pipelines
            continue
        items = value.items() if isinstance(value, dict) and 'type' not in value else None
        if isinstance(value, dict) and 'type' in value:
            _check_dataset(value, f'{where}.{key}', issues)
        elif items is not None:  # MultiBranchDataset(branches=dict(source=..., target=...))
            for name, item in items:
                if isinstance(item, dict) and 'type' in item:
                    _check_dataset(item, f'{where}.{key}.{name}', issues)
        elif isinstance(value, (list, tuple)):  # ConcatDataset(datasets=[...])
            for i, item in enumerate(value):
                if isinstance(item, dict) and 'type' in item:
                    _check_dataset(item, f'{where}.{key}[{i}]', issues)


def _check_optim_wrapper(cfg: Any, where: str, issues: list[str]) -> None:
    """One wrapper: ``dict(type='OptimWrapper', optimizer=dict(type=...), clip_grad=...)``."""
    if not isinstance(cfg, dict):
        return
    _check_keys(
        cfg,
        OPTIM_WRAPPERS,
        where,
        issues,
        default='OptimWrapper',
        extra=('optimizer', 'constructor', 'paramwise_cfg'),
    )
    optimizer = cfg.get('optimizer')
    if isinstance(optimizer, dict):
        _check_keys(optimizer, OPTIMIZERS, f'{where}.optimizer', issues, injected=('params',))
    paramwise = cfg.get('paramwise_cfg')
    if isinstance(paramwise, dict):
        for key in paramwise:
            if key not in PARAMWISE_KEYS:
                close = difflib.get_close_matches(key, sorted(PARAMWISE_KEYS), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ''
                issues.append(
                    f'{where}.paramwise_cfg.{key}: no such option{hint}; '
                    f'DefaultOptimWrapperConstructor reads {", ".join(sorted(PARAMWISE_KEYS))}.'
                )


# The keys mmengine's DefaultOptimWrapperConstructor reads from paramwise_cfg.
PARAMWISE_KEYS = {
    'custom_keys',
    'bias_lr_mult',
    'bias_decay_mult',
    'norm_decay_mult',
    'dwconv_decay_mult',
    'flat_decay_mult',
    'dcn_offset_lr_mult',
    'bypass_duplicate',
}


def _check_schedulers(cfg: Any, where: str, issues: list[str]) -> None:
    if isinstance(cfg, dict) and 'type' not in cfg:  # one schedule per optimiser name
        for name, item in cfg.items():
            _check_schedulers(item, f'{where}.{name}', issues)
        return
    items = cfg if isinstance(cfg, (list, tuple)) else [cfg]
    for i, item in enumerate(items):
        sub = f'{where}[{i}]' if isinstance(cfg, (list, tuple)) else where
        # mmengine's build_scheduler_from_cfg pops convert_to_iter_based.
        _check_keys(
            item,
            PARAM_SCHEDULERS,
            sub,
            issues,
            extra=('convert_to_iter_based',),
            injected=('optimizer',),
        )


def check_config_keys(cfg: Any, config_path: str = 'the config') -> None:
    """Reject keys that the class named by their ``type=`` does not take, before training.

    Covers the model (segmentor, terms, labellers, nested modules), the datasets, samplers and
    dataloaders, the evaluators, ``default_hooks`` / ``custom_hooks``, ``optim_wrapper`` (the
    wrappers, optimisers, ``paramwise_cfg``) and ``param_scheduler``. Some of these fail only
    late otherwise: ``default_hooks.checkpoint.intervall=1`` is kept by ``CheckpointHook`` and
    raises at the first checkpoint save, after the training up to it is lost.

    Raises:
        ConfigError: Listing every unknown key with its path, a close match and the keys the
            class takes.
    """
    issues: list[str] = []
    _check_model(cfg.get('model'), 'model', MODELS, issues)
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if isinstance(loader, dict):
            where = f'{split}_dataloader'
            # The Runner passes the rest of the dict to torch's DataLoader.
            _check_keys(
                dict(loader, type=DataLoader),
                None,
                where,
                issues,
                extra=('num_batch_per_epoch', 'disable_subprocess_warning'),
            )
            _check_dataset(loader.get('dataset'), f'{where}.dataset', issues)
            _check_keys(
                loader.get('sampler'),
                DATA_SAMPLERS,
                f'{where}.sampler',
                issues,
                injected=('dataset',),
            )
        evaluator = cfg.get(f'{split}_evaluator')
        for i, metric in enumerate(evaluator if isinstance(evaluator, (list, tuple)) else []):
            _check_keys(metric, METRICS, f'{split}_evaluator[{i}]', issues)
        if isinstance(evaluator, dict):
            _check_keys(evaluator, METRICS, f'{split}_evaluator', issues)
            if isinstance(evaluator.get('metrics'), dict):  # DomainEvaluator's one metric
                _check_keys(evaluator['metrics'], METRICS, f'{split}_evaluator.metrics', issues)
    for name, hook in (cfg.get('default_hooks') or {}).items():
        # The Runner reads `priority` itself when registering a hook.
        _check_keys(hook, HOOKS, f'default_hooks.{name}', issues, extra=('priority',))
    for i, hook in enumerate(cfg.get('custom_hooks') or []):
        _check_keys(hook, HOOKS, f'custom_hooks[{i}]', issues, extra=('priority',))
    optim = cfg.get('optim_wrapper')
    if isinstance(optim, dict):
        constructor = _lookup(
            OPTIM_WRAPPER_CONSTRUCTORS, optim.get('constructor', 'DefaultOptimWrapperConstructor')
        )
        if constructor is DefaultOptimWrapperConstructor:
            _check_optim_wrapper(optim, 'optim_wrapper', issues)
        elif (
            constructor is not None and constructor.__name__ == 'LayerDecayOptimWrapperConstructor'
        ):
            paramwise = {k: v for k, v in (optim.get('paramwise_cfg') or {}).items()}
            paramwise.pop('layer_decay', None)  # uda's own key (uda/engine/optim_constructor.py)
            _check_optim_wrapper(dict(optim, paramwise_cfg=paramwise), 'optim_wrapper', issues)
        elif constructor is not None and constructor.__name__ == 'AdapterOptimWrapperConstructor':
            for name, sub in optim.items():
                if name not in ('constructor', 'paramwise_cfg'):
                    _check_optim_wrapper(sub, f'optim_wrapper.{name}', issues)
    if cfg.get('param_scheduler') is not None:
        _check_schedulers(cfg.get('param_scheduler'), 'param_scheduler', issues)
    if issues:
        raise ConfigError(
            f'Unknown keys in {config_path}:\n  '
            + '\n  '.join(issues)
            + '\nFix the key in the config (or in --cfg-options); the classes named above '
            'take only the options listed.'
        )


def _labelled_datasets(dataset: Any, where: str) -> list[tuple[str, Any]]:
    """``[(config path, dataset)]`` of the labelled datasets in ``dataset`` (into branches)."""
    branches = getattr(dataset, 'datasets', None)
    if isinstance(branches, dict):  # MultiBranchDataset
        found = []
        for name, ds in branches.items():
            found += _labelled_datasets(ds, f'{where}.branches.{name}')
        return found
    if isinstance(branches, (list, tuple)):  # ConcatDataset
        found = []
        for i, ds in enumerate(branches):
            found += _labelled_datasets(ds, f'{where}.datasets[{i}]')
        return found
    if not getattr(dataset, 'with_label', True) and getattr(dataset, 'image_labels', None) is None:
        return []  # an unlabelled target set has no class ids to disagree with
    meta = getattr(dataset, 'metainfo', None)
    if not isinstance(meta, dict) or 'classes' not in meta:
        return []
    return [(where, dataset)]


def check_class_counts(
    runner: Any, stages: Sequence[str] = ('train', 'val'), config_path: str = 'the config'
) -> None:
    """Fail before the first iteration when the model's class count differs from the labelled
    datasets' protocols or the evaluators' protocols.

    Without this, a 19-class model on CamVid's 11 classes trains, and the metric used to
    clamp its predictions 11-18 into class 10; 5 classes on 19-class labels die with
    ``IndexError: Target 10 is out of bounds`` inside the loss. The check builds the loops of
    ``stages`` (``'train'``, ``'val'``, ``'test'``) in the order ``Runner.train()`` /
    ``Runner.test()`` builds them, which then reuse them.

    Args:
        runner: A built ``mmengine.runner.Runner``.
        stages: Loops whose datasets and evaluators are compared with the model.
        config_path: Named in the error.

    Raises:
        ConfigError: Naming the keys that disagree and how to make them agree.
    """
    model = runner.model.module if hasattr(runner.model, 'module') else runner.model
    n_model = getattr(model, 'num_classes', None)
    if n_model is None:
        return
    key = 'model.num_classes'
    problems: list[str] = []
    student = getattr(model, 'student', None)
    n_seg = getattr(student, 'num_classes', None)
    if n_seg is not None and int(n_seg) != int(n_model):
        problems.append(f'model.segmentor.num_classes={n_seg} but model.num_classes={n_model}')
    elif n_seg is not None:
        key = 'model.segmentor.num_classes'
    for stage in stages:
        loop = getattr(runner, f'{stage}_loop', None)
        if loop is None:
            continue
        dataset = getattr(getattr(loop, 'dataloader', None), 'dataset', None)
        for where, ds in _labelled_datasets(dataset, f'{stage}_dataloader.dataset'):
            meta = ds.metainfo
            n = len(meta['classes'])
            if n != n_model:
                problems.append(
                    f"{where} ({type(ds).__name__}) has protocol '{meta.get('protocol')}' "
                    f'with {n} classes but {key}={n_model}'
                )
        evaluator = getattr(loop, 'evaluator', None)
        for i, metric in enumerate(getattr(evaluator, 'metrics', None) or []):
            n_metric = getattr(metric, 'num_classes', None)
            protocol = getattr(getattr(metric, 'protocol', None), 'name', None)
            if n_metric is not None and int(n_metric) != n_model:
                problems.append(
                    f'{stage}_evaluator ({type(metric).__name__} #{i}) has protocol '
                    f"'{protocol}' with {n_metric} classes but {key}={n_model}"
                )
    if problems:
        raise ConfigError(
            f'Class counts disagree in {config_path}:\n  '
            + '\n  '.join(problems)
            + f'\nSet {key} to the class count of the dataset protocol (the `protocol` of the '
            'dataset config and of val_evaluator / test_evaluator), or set those protocols to '
            'the label space the model predicts; all must name the same label space.'
        )


def build_checked_runner(
    cfg: Config, stages: Sequence[str] = ('train', 'val'), config_path: str = 'the config'
) -> Any:
    """Check the config's keys, build the Runner and check its class counts.

    The pre-flight of ``tools/train.py`` (stages train, val) and ``tools/test.py`` (test):
    every error here comes before the first iteration, not at the first checkpoint save or
    as an ``IndexError`` inside the loss.
    """
    from mmengine.runner import Runner

    check_config_keys(cfg, config_path)
    apply_determinism(cfg)  # randomness.deterministic: cuBLAS workspace, no cuDNN autotuner
    runner = Runner.from_cfg(cfg)
    after_runner_built(cfg)  # deterministic='warn'
    check_class_counts(runner, stages, config_path)
    check_label_sizes(runner, stages)
    return runner


def check_label_sizes(runner: Any, stages: Sequence[str] = ('train', 'val')) -> None:
    """Every labelled file-pair dataset of ``stages`` compares its label and image sizes
    from the file headers before the first iteration (``FilePairDataset.check_pair_sizes``)."""
    for stage in stages:
        loop = getattr(runner, f'{stage}_loop', None)
        dataset = getattr(getattr(loop, 'dataloader', None), 'dataset', None)
        for _, ds in _labelled_datasets(dataset, f'{stage}_dataloader.dataset'):
            check = getattr(ds, 'check_pair_sizes', None)
            if callable(check):
                check()


# Errors of bad input that the tools print as one message instead of a traceback.
TOOL_ERRORS = (ValueError, KeyError, TypeError, OSError, RuntimeError)


def _close_process_group() -> None:
    """Wait for every rank, then destroy the process group: a gloo group left to the
    interpreter's exit can abort one rank ("terminate called without an active exception")
    while another is still writing its report."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


_WORKER_HEADER = re.compile(r'^Caught \w+ in DataLoader worker process (\d+)\.\nOriginal ', re.S)


def unwrap_worker_error(message: str) -> str:
    """The original message of an error raised inside a DataLoader worker.

    torch re-raises a worker's exception in the main process with the same type and the
    message ``Caught OSError in DataLoader worker process 0.\nOriginal Traceback ...`` (torch
    ``torch/_utils.py`` ``ExceptionWrapper.reraise``): about 40 lines of worker traceback with
    the real message, which names the file and the fix, at the end. This returns that message
    (of the last exception of a chain), so a worker error reads like a main-process one;
    any other message is returned unchanged.
    """
    if not _WORKER_HEADER.match(message):
        return message
    lines = message.splitlines()
    starts = [
        i for i, line in enumerate(lines) if line.endswith('Traceback (most recent call last):')
    ]
    if not starts:
        return message
    # After the last traceback header: indented frame lines, then `module.Type: message`.
    body = lines[starts[-1] + 1 :]
    first = next((i for i, line in enumerate(body) if line and not line[0].isspace()), None)
    if first is None:
        return message
    text = '\n'.join(body[first:]).rstrip()
    head, sep, rest = text.partition(': ')
    if sep and re.fullmatch(r'[\w.]+', head):
        text = rest
    if len(text) > 1 and text[0] == text[-1] and text[0] in '"\'':  # KeyError reprs its key
        try:
            text = str(ast.literal_eval(text))
        except (ValueError, SyntaxError):
            pass
    return text


def run_tool(main: Callable[[], Any]) -> None:
    """Run a tool's ``main``; print a known error as ``error: <message>`` and exit 2.

    The messages name the file or key and the fix, so a traceback only hides them; an error
    raised in a DataLoader worker is printed as its original message
    (:func:`unwrap_worker_error`), a failed collective names the rank that died or hangs
    (:func:`uda.engine.rank_failure.describe_rank_failure`). Set the environment variable
    ``UDA_DEBUG=1`` to get the traceback instead.
    """
    if os.environ.get('UDA_DEBUG', '') not in ('', '0'):
        main()
        _close_process_group()
        return
    try:
        main()
        _close_process_group()
    except TOOL_ERRORS as err:
        if is_collective_failure(err):  # another rank died or hangs: name it
            print(f'error: {describe_rank_failure(err)}', file=sys.stderr, flush=True)
            sys.stdout.flush()
            # A gloo group with a dead peer aborts the interpreter at exit ("terminate called
            # without an active exception"); leave at once with the tool's exit code.
            os._exit(2)
        msg = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        msg = unwrap_worker_error(str(msg))
        msg = determinism_message(msg) or msg
        print(
            f'error: {msg}\n(UDA_DEBUG=1 shows the traceback of this {type(err).__name__})',
            file=sys.stderr,
        )
        sys.exit(2)
