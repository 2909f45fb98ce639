"""Several validation domains in one run: per-domain metric names through the log,
metrics.json, tools/report.py and the sweep's table."""

import json
import os

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from torch.utils.data import Dataset

from tests.conftest import toy_runner_cfg
from uda.data.domains import DomainDatasets
from uda.evaluation.domains import DomainEvaluator, domain_names, domain_report
from uda.evaluation.run_summary import training_summary
from uda.evaluation.seed_report import seed_report
from uda.registry import DATASETS

ROOT = os.path.join(os.path.dirname(__file__), '..', '..')
SYN = dict(type='SyntheticDataset', num_samples=3, size=(32, 64))


def _domains():
    return dict(target=dict(SYN, style='target', seed=1), source=dict(SYN, style='source', seed=2))


def test_domain_datasets_concatenate_in_order_and_name_their_slices():
    with DefaultScope.overwrite_default_scope('uda'):
        ds = DATASETS.build(dict(type='DomainDatasets', domains=_domains()))
        target = DATASETS.build(_domains()['target'])
        source = DATASETS.build(_domains()['source'])
    assert len(ds) == 6
    assert ds.metainfo['domains'] == [('target', 0, 3), ('source', 3, 6)]
    assert ds.metainfo['classes'] == target.metainfo['classes']
    np.testing.assert_array_equal(ds[4]['inputs'], source[1]['inputs'])
    np.testing.assert_array_equal(ds[2]['inputs'], target[2]['inputs'])
    with pytest.raises(ValueError, match='without "/"'):
        DomainDatasets(dict(a=target, **{'b/c': source}))


class _OtherLabels(Dataset):
    metainfo = dict(classes=('a', 'b'))

    def __len__(self):
        return 1


def test_domains_must_share_the_label_space():
    with DefaultScope.overwrite_default_scope('uda'):
        street = DATASETS.build(dict(SYN, style='target', seed=1))
    with pytest.raises(ValueError, match="domain 'b' has classes"):
        DomainDatasets(dict(a=street, b=_OtherLabels()))


def test_a_run_with_two_domains_names_every_metric_by_domain(tmp_path):
    work = str(tmp_path / 'run')
    cfg = toy_runner_cfg(work, max_iters=2, val_interval=2)
    cfg['val_dataloader']['dataset'] = dict(type='DomainDatasets', domains=_domains())
    metric = cfg['val_evaluator']
    out_file = metric.pop('out_file')
    cfg['val_evaluator'] = dict(type='DomainEvaluator', metrics=metric, out_file=out_file)
    runner = Runner.from_cfg(Config(cfg))
    runner.train()
    metrics = runner.val_loop.run()
    assert {'target/mIoU', 'source/mIoU', 'target/aAcc', 'source/mAcc'} <= set(metrics)
    assert not any(k == 'mIoU' for k in metrics)  # every name says its domain
    with open(out_file) as f:
        report = json.load(f)
    assert domain_names(report) == ['target', 'source']
    assert report['primary'] == 'target'
    assert report['target/mIoU'] == report['domains']['target']['mIoU'] == report['mIoU']
    assert report['source/mIoU'] == report['domains']['source']['mIoU']
    assert report['domains']['source']['num_images'] == 3
    # Each domain scored alone: the source domain's number is its own images' IoU.
    assert report['domains']['source']['IoU'] != report['domains']['target']['IoU']
    # The validation history in the scalars log carries the domain names too.
    scalars = os.path.join(runner.log_dir, 'vis_data', 'scalars.json')
    with open(scalars) as f:
        assert any('"source/mIoU"' in line for line in f)
    lines = training_summary(work, runner.log_dir, cfg['model'])
    assert any(line.startswith('source mIoU (synthetic9, 3 images):') for line in lines), lines
    assert any(line.startswith('target mIoU (synthetic9, 3 images):') for line in lines), lines


def test_report_has_one_table_per_domain(tmp_path):
    runs = []
    for seed, (a, b) in enumerate([(10.0, 20.0), (12.0, 24.0)]):
        rep = dict(IoU={'road': a}, Acc={'road': a}, mIoU=a, aAcc=a, mAcc=a, protocol='p')
        other = dict(rep, IoU={'road': b}, mIoU=b)
        path = tmp_path / f's{seed}' / 'metrics.json'
        path.parent.mkdir()
        path.write_text(json.dumps(domain_report(dict(city=rep, dusk=other))))
        runs.append(str(path.parent))
    markdown, summary = seed_report(runs, 'm', domain='dusk')
    assert summary['mIoU']['mean'] == pytest.approx(22.0)
    assert 'domain dusk' in markdown
    _, first = seed_report(runs, 'm')  # the primary domain, as before
    assert first['mIoU']['mean'] == pytest.approx(11.0)
    with pytest.raises(KeyError, match="no domain 'night'"):
        seed_report(runs, 'm', domain='night')


def test_the_demo_config_validates_two_domains():
    path = os.path.join(ROOT, 'configs/demo/sac_unet-resnet18_400_synthetic-val2domains-96x192.py')
    cfg = Config.fromfile(path)
    assert cfg.val_evaluator.type == 'DomainEvaluator'
    assert list(cfg.val_dataloader.dataset.domains) == ['synthetic-target', 'synthetic-source']


def test_evaluator_without_domain_dataset_is_one_clear_error():
    with DefaultScope.overwrite_default_scope('uda'):
        ev = DomainEvaluator(dict(type='IoUMetric'))
    ev.dataset_meta = dict(classes=('a',))
    with pytest.raises(ValueError, match='needs a DomainDatasets'):
        ev.evaluate(1)


def test_report_tool_writes_a_table_and_a_curve_per_domain(tmp_path, monkeypatch, capsys):
    import runpy
    import sys

    runs = []
    for seed in range(2):
        work = tmp_path / f'seed{seed}'
        (work / '20260101_000000' / 'vis_data').mkdir(parents=True)
        rep = dict(
            IoU={'road': 10.0 + seed}, Acc={}, mIoU=10.0 + seed, aAcc=1, mAcc=1, protocol='p'
        )
        (work / 'metrics.json').write_text(
            json.dumps(domain_report(dict(city=rep, dusk=dict(rep, mIoU=30.0 + seed))))
        )
        rows = [{'city/mIoU': 5.0 + s, 'dusk/mIoU': 6.0 + s, 'step': s} for s in (1, 2)]
        (work / '20260101_000000' / 'vis_data' / 'scalars.json').write_text(
            '\n'.join(json.dumps(r) for r in rows)
        )
        runs.append(str(work))
    out = tmp_path / 'r.md'
    monkeypatch.setattr(sys, 'argv', ['report.py', *runs, '--title', 'T', '--out', str(out)])
    runpy.run_path(os.path.join(ROOT, 'tools', 'report.py'), run_name='__main__')
    text = out.read_text()
    assert '### T: city' in text and '### T: dusk' in text
    assert '| **mIoU** | 30.50 ± 0.71 |' in text  # the dusk table
    assert (tmp_path / 'r_curves_city.png').is_file() and (tmp_path / 'r_curves_dusk.png').is_file()
