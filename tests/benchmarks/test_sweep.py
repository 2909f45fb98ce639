"""benchmarks/sweep.py: the commands it builds and the mean ± std / paired deltas it reports."""

from __future__ import annotations

import importlib.util
import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_spec = importlib.util.spec_from_file_location(
    'sweep', os.path.join(ROOT, 'benchmarks', 'sweep.py')
)
sweep = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sweep)

ABN = 'configs/demo/abn_unet-resnet18_400_synthetic-96x192.py'
SAC = 'configs/demo/sac_unet-resnet18_400_synthetic-96x192.py'


def test_commands_seeds_outer_options_in_order(tmp_path) -> None:
    out = str(tmp_path)
    runs = [
        ('ABN', ABN, []),
        ('SAC w2', SAC, ['model.terms.sac.weight=2.0', 'load_from={out}/abn_seed{seed}/x.pth']),
    ]
    jobs = sweep.build_jobs(runs, [0, 1], out, common=['train_cfg.max_iters=4'])
    assert [(j.name, j.seed) for j in jobs] == [
        ('ABN', 0),
        ('SAC w2', 0),
        ('ABN', 1),
        ('SAC w2', 1),
    ]
    cmd = jobs[3].cmd
    assert cmd[0] == sys.executable and cmd[1].endswith(os.path.join('tools', 'train.py'))
    assert cmd[2] == os.path.join(ROOT, SAC)
    assert cmd[3:7] == ['--work-dir', os.path.join(out, 'sac-w2_seed1'), '--seed', '1']
    assert cmd[7:] == [
        '--cfg-options',
        'train_cfg.max_iters=4',
        'model.terms.sac.weight=2.0',
        f'load_from={out}/abn_seed1/x.pth',
    ]
    assert '--cfg-options' not in sweep.build_jobs([('ABN', ABN, [])], [0], out)[0].cmd


def test_budget_scales_every_scheduler() -> None:
    opts = sweep.budget_options(ABN, 40)
    assert opts[:3] == [
        'train_cfg.max_iters=40',
        'train_cfg.val_interval=40',
        'default_hooks.checkpoint.interval=40',
    ]
    assert 'param_scheduler.0.end=40' in opts


def test_budget_scales_term_phases() -> None:
    # The CamVid CAM leaf: 200 iterations, the mask term from 42; half the budget, from 21.
    opts = sweep.budget_options('configs/cam/cam_unet-resnet18_200_camvid-128x128.py', 100)
    assert 'model.terms.cam_mask.start_iter=21' in opts
    assert not any(o.startswith('model.terms.cam.') for o in opts)


def _fake_run(work_dir: str, miou: float) -> None:
    os.makedirs(work_dir, exist_ok=True)
    with open(os.path.join(work_dir, 'metrics.json'), 'w') as f:
        json.dump(
            dict(
                mIoU=miou,
                aAcc=90.0,
                mAcc=miou,
                IoU={'road': miou, 'sky': None},
                Acc={'road': miou, 'sky': None},
                protocol='synthetic9',
                num_images=4,
            ),
            f,
        )


def test_summary_mean_std_paired_delta_and_gap(tmp_path) -> None:
    out = str(tmp_path)
    runs = [('ABN', ABN, []), ('SAC', SAC, []), ('oracle', ABN, [])]
    jobs = sweep.build_jobs(runs, [0, 1, 2], out)
    values = {'ABN': [10, 12, 14], 'SAC': [13, 14, 18], 'oracle': [20, 22, 24]}
    for j in jobs:
        _fake_run(j.work_dir, values[j.name][j.seed])
    results = {(j.name, j.seed): dict(wall_s=60.0, failed=None) for j in jobs}
    table, summary = sweep.summarize(jobs, results, [0, 1, 2], 'ABN', 'oracle')
    assert summary['SAC']['mIoU'] == dict(mean=15.0, std=pytest.approx(2.6458, abs=1e-4), n=3)
    # Paired by seed: 3, 2, 4 -> 3 ± 1; gap closed 30 %, 20 %, 40 % -> 30 ± 10.
    assert summary['SAC']['delta'] == dict(mean=3.0, std=1.0, n=3)
    assert summary['SAC']['gap_closed_pct'] == dict(mean=30.0, std=10.0, n=3)
    assert (
        '| SAC | 15.00 ± 2.65 (n=3) | 13.00 / 14.00 / 18.00 | 3.00 ± 1.00 (n=3) | '
        '30.00 ± 10.00 % (n=3) | 60 s |' in table
    )
    os.remove(os.path.join(jobs[4].work_dir, 'metrics.json'))  # SAC seed 1 missing
    _, summary = sweep.summarize(jobs, results, [0, 1, 2], 'ABN')
    assert summary['SAC']['delta'] == dict(mean=3.5, std=pytest.approx(0.7071, abs=1e-4), n=2)


def test_run_job_reuses_finished_runs_and_reports_failures(tmp_path) -> None:
    wd = str(tmp_path / 'a_seed0')
    write = (
        f'import json, os; os.makedirs({wd!r}, exist_ok=True); '
        f"json.dump(dict(mIoU=1.0), open(os.path.join({wd!r}, 'metrics.json'), 'w'))"
    )
    ok = sweep.Job('a', 0, wd, [sys.executable, '-c', write])
    assert sweep.run_job(ok)['failed'] is None
    again = sweep.run_job(ok._replace(cmd=[sys.executable, '-c', 'raise SystemExit(3)']))
    assert again['failed'] is None  # reused: sweep_run.json and metrics.json exist
    bad = sweep.Job(
        'b', 0, str(tmp_path / 'b_seed0'), [sys.executable, '-c', 'raise SystemExit(3)']
    )
    assert 'exit code 3' in sweep.run_job(bad)['failed']


def test_presets_resolve_and_dry_run(tmp_path, capsys) -> None:
    for name in sweep.PRESETS:
        runs, _ = sweep.resolve(sweep.parse_args(['--preset', name, '--dry-run']))
        assert all(os.path.isfile(os.path.join(ROOT, c)) for _, c, _ in runs), name
    sweep.main(
        [
            '--run',
            'ABN',
            ABN,
            '--run',
            'SAC',
            SAC,
            'model.terms.sac.weight=2.0',
            '--baseline',
            'ABN',
            '--seeds',
            '0',
            '--out',
            str(tmp_path),
            '--dry-run',
        ]
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[1].endswith('--cfg-options model.terms.sac.weight=2.0')
    with pytest.raises(SystemExit, match='not one of the runs'):
        sweep.main(['--run', 'ABN', ABN, '--baseline', 'oracle', '--dry-run'])


def test_main_writes_summary_files(tmp_path, monkeypatch) -> None:
    def fake(job):
        _fake_run(job.work_dir, {'ABN': 10.0, 'SAC': 12.0}[job.name])
        return dict(wall_s=1.0, failed=None)

    monkeypatch.setattr(sweep, 'run_job', fake)
    summary = sweep.main(
        [
            '--run',
            'ABN',
            ABN,
            '--run',
            'SAC',
            SAC,
            '--baseline',
            'ABN',
            '--seeds',
            '0',
            '--out',
            str(tmp_path),
        ]
    )
    assert summary['SAC']['delta']['mean'] == 2.0
    saved = json.loads((tmp_path / 'summary.json').read_text())
    assert saved['runs']['SAC']['mIoU'] == dict(mean=12.0, std=None, n=1)  # no NaN in JSON
    assert '| SAC | 12.00 (n=1) |' in (tmp_path / 'summary.md').read_text()
    assert '| road |' in (tmp_path / 'sac.md').read_text()  # per-class table (seed_report)


def test_main_draws_curves_and_per_class_deltas(tmp_path, monkeypatch) -> None:
    def fake(job):
        _fake_run(job.work_dir, {'ABN': 10.0, 'SAC': 12.0}[job.name] + job.seed)
        d = os.path.join(job.work_dir, 't', 'vis_data')
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, 'scalars.json'), 'w') as f:
            f.write(json.dumps(dict(mIoU=5.0 + job.seed, step=100)) + '\n')
        return dict(wall_s=1.0, failed=None)

    monkeypatch.setattr(sweep, 'run_job', fake)
    args = ['--run', 'ABN', ABN, '--run', 'SAC', SAC, '--baseline', 'ABN', '--seeds', '0', '1']
    sweep.main([*args, '--out', str(tmp_path)])
    assert (tmp_path / 'curves.png').is_file() and (tmp_path / 'delta_sac.png').is_file()
    assert os.listdir(tmp_path / 'tensorboard')  # the same pictures as a TensorBoard event file


def test_converged_placeholders_name_the_seeds_cached_baseline(monkeypatch) -> None:
    from benchmarks import converged

    made = []

    def ensure(name, seed, config):
        made.append((name, seed))
        return dict(checkpoint=f'/c/{name}_seed{seed}/iter_3000.pth', failed=None)

    monkeypatch.setattr(converged, 'ensure', ensure)
    runs = [('SAC', SAC, ['load_from={converged:ABN}', 'x=1']), ('ABN', ABN, [])]
    (_, _, opts), _ = sweep.with_converged(runs, [0, 1])
    assert sorted(made) == [('ABN', 0), ('ABN', 1)]  # made (or reused) for every seed first
    jobs = sweep.build_jobs([('SAC', SAC, opts)], [1], 'out')
    assert f'load_from={converged.work_dir("ABN", 1)}/iter_3000.pth' in jobs[0].cmd
    with pytest.raises(SystemExit, match='no such baseline'):
        sweep.with_converged([('X', ABN, ['load_from={converged:nope}'])], [0])
    monkeypatch.setattr(converged, 'ensure', lambda *a: dict(failed='training exit code 1'))
    with pytest.raises(SystemExit, match='training exit code 1'):
        sweep.with_converged(runs, [0])


def test_summary_has_a_column_per_validation_domain(tmp_path) -> None:
    jobs = sweep.build_jobs([('ABN', ABN, []), ('SAC', SAC, [])], [0, 1], str(tmp_path))
    from uda.evaluation.domains import domain_report

    for j in jobs:
        base = 10.0 * (1 + (j.name == 'SAC')) + j.seed
        rep = dict(mIoU=base, aAcc=90.0, mAcc=base, IoU={'road': base}, Acc={}, protocol='p')
        os.makedirs(j.work_dir, exist_ok=True)
        with open(os.path.join(j.work_dir, 'metrics.json'), 'w') as f:
            json.dump(domain_report(dict(city=rep, dusk=dict(rep, mIoU=base + 5))), f)
    results = {(j.name, j.seed): dict(wall_s=1.0, failed=None) for j in jobs}
    table, summary = sweep.summarize(jobs, results, [0, 1])
    assert '| run | target mIoU | per seed (0, 1) | city/mIoU | dusk/mIoU |' in table
    assert summary['SAC']['domains']['dusk']['mean'] == 25.5
    assert summary['SAC']['mIoU']['mean'] == 20.5  # the primary (first) domain
