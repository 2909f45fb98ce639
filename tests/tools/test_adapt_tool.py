"""tools/adapt.py end to end on the ToySegmentor: a folder of images, a labelled dataset, export."""

from __future__ import annotations

import json
import os
import runpy
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from tests.conftest import toy_runner_cfg
from uda.engine.checkpoint import load_checkpoint_file
from uda.registry import MODELS


def run_tool(path: str, argv: list[str]) -> None:
    old = sys.argv
    sys.argv = [path] + argv
    try:
        runpy.run_path(path, run_name='__main__')
    finally:
        sys.argv = old


def trained(tmp_path) -> tuple[str, str]:
    """A 'trained' toy checkpoint whose meta holds its config, as tools/train.py writes it."""
    cfg = toy_runner_cfg(str(tmp_path / 'train'))
    cfg['model']['segmentor'] = dict(type='ToySegmentor', num_classes=19)
    cfg.update(test_dataloader=cfg['val_dataloader'], test_evaluator=cfg['val_evaluator'])
    config = Config(cfg)
    config.dump(str(tmp_path / 'cfg.py'))
    torch.manual_seed(0)
    model = MODELS.build(cfg['model'])
    path = str(tmp_path / 'ckpt.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict(cfg=config.pretty_text)), path)
    return str(tmp_path / 'cfg.py'), path


def test_adapts_a_folder_of_images_and_the_result_exports(tmp_path, capsys):
    _, ckpt = trained(tmp_path)
    images = tmp_path / 'frames'
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (24, 40, 3), dtype=np.uint8)).save(
            images / f'f{i}.png'
        )
    out = tmp_path / 'out'
    run_tool(
        'tools/adapt.py',
        [ckpt, str(images), '--method', 'tent', '--out', str(out), '--batch-size', '2'],
    )
    assert sorted(os.listdir(out / 'masks')) == ['f0.png', 'f1.png', 'f2.png']
    assert len(os.listdir(out / 'overlays')) == 3
    assert np.array(Image.open(out / 'masks' / 'f0.png')).shape == (24, 40)
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['images'] == 3 and summary['reset_mode'] == 'continual' and 'mIoU' not in summary
    # TENT trained the normalisation layer's affine parameters and nothing else.
    src = load_checkpoint_file(ckpt, 'cpu')['state_dict']
    new = load_checkpoint_file(str(out / 'adapted.pth'), 'cpu')['state_dict']
    changed = {k for k in src if k.startswith('student.') and not torch.equal(src[k], new[k])}
    assert changed == {'student.bn.weight', 'student.bn.bias'}
    assert 'ms/image' in capsys.readouterr().out
    # The adapted checkpoint exports like any other.
    run_tool(
        'tools/export.py',
        [
            str(out / 'config.py'),
            str(out / 'adapted.pth'),
            '--format',
            'safetensors',
            '--out',
            str(out / 'm.safetensors'),
        ],
    )
    assert (out / 'm.safetensors').is_file()


def test_labelled_dataset_scores_source_and_adapted(tmp_path):
    cfg, ckpt = trained(tmp_path)
    runs = {}
    for method in ('source', 'bn'):
        out = tmp_path / method
        run_tool(
            'tools/adapt.py',
            [
                cfg,
                'test',
                '--checkpoint',
                ckpt,
                '--method',
                method,
                '--episodic',
                '--out',
                str(out),
            ],
        )
        runs[method] = json.loads((out / 'summary.json').read_text())
    assert runs['bn']['reset_mode'] == 'episodic' and runs['bn']['labelled_images'] == 4
    # The source column is the unadapted model: what the 'source' method predicts.
    assert runs['bn']['mIoU']['source'] == pytest.approx(runs['source']['mIoU']['adapted'])
    assert runs['source']['mIoU']['source'] == pytest.approx(runs['source']['mIoU']['adapted'])


def test_a_config_needs_a_checkpoint(tmp_path):
    cfg, _ = trained(tmp_path)
    with pytest.raises(SystemExit, match='--checkpoint'):
        run_tool('tools/adapt.py', [cfg, 'test', '--method', 'bn', '--out', str(tmp_path / 'o')])


@pytest.mark.parametrize('method', ['source', 'bn', 'tent', 'cotta', 'sac'])
def test_every_method_base_composes_with_a_trained_network(tmp_path, method):
    from uda.engine.adapt import adaptation_config, network_config

    cfg_path, _ = trained(tmp_path)
    cfg = adaptation_config(network_config(cfg_path), method, episodic=True)
    assert cfg.test_cfg.type == 'TestTimeAdaptLoop' and cfg.test_cfg.reset == 'episodic'
    assert cfg.model.segmentor.type == 'ToySegmentor' and 'test_dataloader' in cfg
    model = MODELS.build(cfg.model.to_dict())
    assert (model.teacher is not None) == (method in ('cotta', 'sac'))


def test_image_stream_reads_photos_upright_in_any_format(tmp_path) -> None:
    from PIL import Image

    from uda.engine.adapt import image_stream

    rotated = Image.new('RGB', (40, 20), (200, 10, 10))
    exif = rotated.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees to view
    rotated.save(tmp_path / 'a.jpg', exif=exif)
    Image.new('LA', (8, 6)).save(tmp_path / 'b.png')  # grey + alpha
    batches = list(image_stream([str(tmp_path / 'a.jpg'), str(tmp_path / 'b.png')], 1))
    assert batches[0]['inputs'][0].shape == (3, 40, 20)  # upright: 20 wide, 40 high
    assert batches[1]['inputs'][0].shape == (3, 6, 8)
