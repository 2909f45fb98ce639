"""What ``tools/adapt.py`` runs: a trained model + a test-time method -> an adapted model.

:func:`adaptation_config` puts a trained model's network (from its config, or the config saved
in its checkpoint) under a method base ``configs/_base_/methods/tta_<method>.py``;
:func:`adapt_stream` runs :class:`uda.engine.TestTimeAdapter` over a stream, writes predictions
and overlays, and scores the source and the adapted predictions where the stream has labels.
"""

from __future__ import annotations

import copy
import json
import os
import os.path as osp
from typing import Any, Iterator, Optional

import numpy as np
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from uda.engine.checkpoint import load_checkpoint_file, segmentor_weights, state_dict_of
from uda.engine.test_time import TestTimeAdapter
from uda.models.segmentor import architecture_only

CONFIG_ROOT = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs')
METHODS = ('source', 'bn', 'tent', 'cotta', 'sac')
# Keys of the trained model's config that the adaptation config keeps (network, evaluation).
KEPT = ('test_dataloader', 'test_evaluator', 'val_dataloader', 'val_evaluator', 'inference_cfg')


def network_config(config_or_checkpoint: str, config: Optional[str] = None) -> Config:
    """The trained model's config: ``config``, the file itself, or the one saved in the
    checkpoint by the Runner (``meta['cfg']``)."""
    if config is not None or config_or_checkpoint.endswith('.py'):
        path = config or config_or_checkpoint
        if not osp.isfile(path):
            raise FileNotFoundError(f'Config file not found: {path}.')
        return Config.fromfile(path)
    ckpt = load_checkpoint_file(config_or_checkpoint, 'cpu')
    text = (ckpt.get('meta') or {}).get('cfg') if isinstance(ckpt, dict) else None
    if not text:
        raise KeyError(
            f'{config_or_checkpoint} holds no config (meta.cfg; not written by tools/train.py?): '
            'give the config it was trained with, --config CONFIG.'
        )
    return Config.fromstring(text, '.py')


def adaptation_config(net_cfg: Config, method: str, episodic: bool = False) -> Config:
    """The trained network under the test-time method base ``tta_<method>.py``."""
    if method not in METHODS:
        raise ValueError(f'--method {method!r}: use one of {METHODS}.')
    if 'segmentor' not in net_cfg.get('model', {}):
        raise KeyError('The trained model config has no model.segmentor; give its training config.')
    base = Config.fromfile(osp.join(CONFIG_ROOT, '_base_', 'methods', f'tta_{method}.py')).to_dict()
    trained = net_cfg.model.to_dict()
    model = copy.deepcopy(base['model'])
    model['segmentor'] = dict(
        architecture_only(trained['segmentor']), **base['model'].get('segmentor', {})
    )
    for key in ('data_preprocessor', 'test_cfg', 'num_classes', 'ignore_index'):
        if key in trained:
            model[key] = trained[key]
    out: dict[str, Any] = dict(default_scope='uda', model=model, test_cfg=dict(base['test_cfg']))
    if episodic:
        out['test_cfg']['reset'] = 'episodic'
    for key in KEPT:
        if key in net_cfg:
            value = net_cfg[key]
            out[key] = value.to_dict() if hasattr(value, 'to_dict') else value
    return Config(out)


def image_stream(paths: list[str], batch_size: int) -> Iterator[dict]:
    """Collated batches of unlabelled images, in order."""
    from uda.data.base import read_image

    for i in range(0, len(paths), batch_size):
        inputs, samples = [], []
        for p in paths[i : i + batch_size]:
            img = read_image(p, exif_transpose=True)  # as a person sees the photo (issue 25)
            inputs.append(torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))))
            samples.append(dict(img_path=p, ori_shape=img.shape[:2], img_shape=img.shape[:2]))
        yield dict(inputs=inputs, data_samples=samples)


def dataset_stream(cfg: Config, which: str, batch_size: int) -> Iterator[dict]:
    """Collated batches of the config's ``<which>_dataloader`` dataset, in order (labels kept
    for scoring; the adaptation never reads them)."""
    from uda.registry import DATASETS

    key = f'{which}_dataloader'
    if key not in cfg:
        raise KeyError(f'The config has no {key}; give a folder of images instead.')
    with DefaultScope.overwrite_default_scope('uda'):
        dataset = DATASETS.build(cfg[key]['dataset'])
    for i in range(0, len(dataset), batch_size):
        items = [dataset[j] for j in range(i, min(i + batch_size, len(dataset)))]
        yield dict(
            inputs=[it['inputs'] for it in items], data_samples=[it['data_samples'] for it in items]
        )


def build_adapter(cfg: Config, checkpoint: str) -> Any:
    """The adapter of ``cfg`` with the trained student weights of ``checkpoint`` (strictly)."""
    from uda.engine.checkpoint import check_weights_fit
    from uda.registry import MODELS

    with DefaultScope.overwrite_default_scope('uda'):
        model = MODELS.build(cfg.model.to_dict())
    weights = segmentor_weights(
        state_dict_of(load_checkpoint_file(checkpoint, 'cpu')), 'student', checkpoint
    )
    check_weights_fit(model.student.state_dict(), weights, checkpoint, 'the adaptation config')
    model.student.load_state_dict(weights, strict=True)
    return model.eval()


def _scores(conf: np.ndarray, eval_ids: Any) -> Optional[float]:
    from uda.evaluation.iou_metric import iou_from_confusion

    miou = float(iou_from_confusion(conf, eval_ids)['miou'])
    return None if not np.isfinite(miou) else 100 * miou


def adapt_stream(
    cfg: Config,
    checkpoint: str,
    batches: Iterator[dict],
    out_dir: str,
    palette: list,
    eval_ids: Optional[Any] = None,
    num_classes: int = 19,
    ignore_index: int = 255,
    max_pred_images: Optional[int] = None,
) -> dict[str, Any]:
    """Adapt along ``batches``; write ``masks/``, ``overlays/``, ``adapted.pth``,
    ``config.py`` and ``summary.json`` to ``out_dir``; return the summary.

    Where the batches carry labels, the source model predicts each batch too (before any
    adaptation, BatchNorm with its source statistics) and both mIoUs are reported.
    """
    from uda.evaluation.image_predictor import save_prediction
    from uda.evaluation.iou_metric import confusion_matrix

    os.makedirs(out_dir, exist_ok=True)
    model = build_adapter(cfg, checkpoint)
    source = copy.deepcopy(model)
    loop = {k: v for k, v in cfg.test_cfg.to_dict().items() if k != 'type'}
    optim = loop.pop('optim_wrapper', None)
    tta = TestTimeAdapter(model, optim, **loop)
    tta.start()
    conf: dict[str, Any] = {'source': 0, 'adapted': 0}
    labelled = written = 0
    for batch in batches:
        outs = tta.step(batch)
        has_gt = all('gt_sem_seg' in s for s in batch['data_samples'])
        if has_gt:
            with torch.no_grad():
                x = source.data_preprocessor(batch, False)['inputs']
                src_pred = source.inference(x, 'student').argmax(1)
        for i, out in enumerate(outs):
            pred = out['pred_sem_seg']
            if has_gt:
                h, w = pred.shape
                gt = out['gt_sem_seg'].reshape(-1)
                for name, p in (('adapted', pred), ('source', src_pred[i, :h, :w])):
                    c = confusion_matrix(p.reshape(-1), gt, num_classes, ignore_index)
                    conf[name] = conf[name] + c.cpu().numpy()
                labelled += 1
            if max_pred_images is None or written < max_pred_images:
                image = batch['inputs'][i].permute(1, 2, 0).numpy()
                name = osp.basename(str(out.get('img_path', f'image_{tta.images}_{i}')))
                save_prediction(
                    pred.to(torch.uint8).cpu().numpy(), image, palette, out_dir, name or f'{i}.png'
                )
                written += 1
    summary: dict[str, Any] = dict(tta.summary(), method_cfg=loop)
    if labelled:
        ids = eval_ids if eval_ids is not None else list(range(num_classes))
        summary['mIoU'] = dict(
            source=_scores(conf['source'], ids), adapted=_scores(conf['adapted'], ids)
        )
        summary['labelled_images'] = labelled
    ckpt = osp.join(out_dir, 'adapted.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict(cfg=cfg.pretty_text)), ckpt)
    cfg.dump(osp.join(out_dir, 'config.py'))
    with open(osp.join(out_dir, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=1)
    return summary


__all__ = [
    'METHODS',
    'adapt_stream',
    'adaptation_config',
    'build_adapter',
    'dataset_stream',
    'image_stream',
    'network_config',
]
