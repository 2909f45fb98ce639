"""Init weights: the resolution order, the download path (a local HTTP server), the one-line
offline error, the init layouts, and the inits the paper-scale leaf configs name."""

from __future__ import annotations

import functools
import glob
import hashlib
import http.server
import os
import os.path as osp
import threading
from typing import Iterator

import pytest
import torch
import torchvision
from mmengine.config import Config

from uda.models import SMPSegmentor
from uda.models.weights import (
    WeightsChecksumError,
    WeightsNotFoundError,
    expected_sha256,
    resolve_weights,
    skip_init_for_warm_start,
)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
UNET = dict(arch='Unet', encoder_name='resnet18', num_classes=3, decoder_channels=(8,) * 5)


@pytest.fixture
def caches(tmp_path, monkeypatch) -> dict[str, str]:
    """Empty torch hub / Hugging Face caches and no $UDA_WEIGHTS, whatever this machine has."""
    torch_home, hf = tmp_path / 'torch_home', tmp_path / 'hf'
    monkeypatch.setenv('TORCH_HOME', str(torch_home))
    monkeypatch.setenv('HF_HUB_CACHE', str(hf))
    monkeypatch.delenv('UDA_WEIGHTS', raising=False)
    monkeypatch.delenv('UDA_WEIGHTS_OFFLINE', raising=False)
    monkeypatch.delenv('HF_HUB_OFFLINE', raising=False)
    monkeypatch.setattr(torch.hub, '_hub_dir', None)  # a set_dir() elsewhere must not leak in
    return dict(hub=str(torch_home / 'hub' / 'checkpoints'), hf=str(hf))


def _hf_snapshot(cache: str, repo_id: str, filename: str, data: bytes) -> str:
    """A file in the Hugging Face cache layout (models--o--n/refs/main, snapshots/<rev>/)."""
    rev = 'a' * 40
    repo = osp.join(cache, 'models--' + repo_id.replace('/', '--'))
    os.makedirs(osp.join(repo, 'refs'))
    with open(osp.join(repo, 'refs', 'main'), 'w') as f:
        f.write(rev)
    path = osp.join(repo, 'snapshots', rev, filename)
    os.makedirs(osp.dirname(path))
    with open(path, 'wb') as f:
        f.write(data)
    return path


def _write(path, data: bytes = b'x') -> str:
    os.makedirs(osp.dirname(str(path)), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data)
    return str(path)


def test_resolution_order(caches, tmp_path, monkeypatch) -> None:
    """Explicit path, then $UDA_WEIGHTS, then the torch hub cache, then the Hugging Face cache:
    each step wins over the later ones and is used when the earlier ones lack the file."""
    monkeypatch.setenv('UDA_WEIGHTS_OFFLINE', '1')
    name, hf = 'net-0123abcd.pth', dict(repo_id='org/net', filename='model.safetensors')
    explicit = _write(tmp_path / 'mine' / name)
    folder = tmp_path / 'weights'
    in_folder = _write(folder / name)
    in_hub = _write(osp.join(caches['hub'], name))
    in_hf = _hf_snapshot(caches['hf'], 'org/net', 'model.safetensors', b'y')
    monkeypatch.setenv('UDA_WEIGHTS', os.pathsep.join([str(tmp_path / 'none'), str(folder)]))
    steps = [(explicit, 'file'), (in_folder, 'UDA_WEIGHTS'), (in_hub, 'torch hub cache')]
    steps.append((in_hf, 'huggingface cache'))
    for path, source in steps:
        found = resolve_weights(explicit, hf=hf)
        assert (found.path, found.source) == (path, source)
        os.remove(path)
    with pytest.raises(WeightsNotFoundError):
        resolve_weights(explicit, hf=hf)


def test_offline_error_is_one_line_naming_file_url_folder_and_the_fix(caches, monkeypatch):
    monkeypatch.setenv('UDA_WEIGHTS_OFFLINE', '1')
    url = 'https://example.org/models/net-0123abcd.pth'
    with pytest.raises(WeightsNotFoundError) as info:
        resolve_weights('net-0123abcd.pth', url=url)
    msg = str(info.value)
    assert '\n' not in msg
    for part in ('net-0123abcd.pth', url, caches['hub'], 'UDA_WEIGHTS', 'encoder_checkpoint=None'):
        assert part in msg, part
    # No direct URL (Google Drive): the error says where to get it by hand.
    monkeypatch.setenv('UDA_WEIGHTS', '/data/weights')
    with pytest.raises(WeightsNotFoundError) as info:
        resolve_weights('resnet101.pth', manual='Google Drive id 1Rx0', key='k.init')
    msg = str(info.value)
    assert '\n' not in msg and 'Google Drive id 1Rx0' in msg and 'put it in /data/weights' in msg
    assert 'k.init=None' in msg


def test_a_failed_download_is_the_same_one_line_error(caches) -> None:
    # A port nobody listens on: the connection is refused at once.
    with pytest.raises(WeightsNotFoundError, match='download failed') as info:
        resolve_weights('net.pth', url='http://127.0.0.1:9/net.pth', timeout=5)
    assert '\n' not in str(info.value) and not os.listdir(caches['hub'])


@pytest.fixture
def server(tmp_path) -> Iterator[tuple[str, str]]:
    """(folder, base URL) of a local HTTP server on an ephemeral port, shut down afterwards."""
    folder = tmp_path / 'served'
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield str(folder), f'http://127.0.0.1:{httpd.server_address[1]}'
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_download_end_to_end(caches, server) -> None:
    """A torchvision ResNet file (random weights, torchvision's own names and its ``fc``) named
    ``<arch>-<sha256 prefix>.pth``: downloaded into the torch hub cache, checked, loaded into
    the segmentor; a second build reads the cache; a wrong checksum is rejected."""
    folder, base = server
    torch.manual_seed(0)
    saved = torchvision.models.resnet18(weights=None).state_dict()
    tmp = osp.join(folder, 'tmp.pth')
    torch.save(saved, tmp)
    with open(tmp, 'rb') as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    name = f'resnet18-{digest[:8]}.pth'
    os.rename(tmp, osp.join(folder, name))
    init = dict(file=name, url=f'{base}/{name}', layout='torchvision')

    seg = SMPSegmentor(**UNET, encoder_checkpoint=init)
    cached = osp.join(caches['hub'], name)
    assert os.listdir(caches['hub']) == [name]  # no temporary file left behind
    with open(cached, 'rb') as f:
        assert hashlib.sha256(f.read()).hexdigest() == digest
    own = seg.net.encoder.state_dict()
    assert all(torch.equal(own[k], v) for k, v in saved.items() if not k.startswith('fc.'))
    assert seg.checkpoint_report is not None and seg.checkpoint_report.share == 1.0
    assert seg.checkpoint_report.dropped == ['fc.bias', 'fc.weight']

    os.remove(osp.join(folder, name))  # the server no longer has it: the cache serves
    again = SMPSegmentor(**UNET, encoder_checkpoint=init)
    assert torch.equal(again.net.encoder.conv1.weight, saved['conv1.weight'])

    # The same bytes under a name whose hash prefix is wrong, and a wrong explicit sha256.
    bad = 'resnet18-deadbeef.pth'
    os.rename(cached, osp.join(folder, bad))
    with pytest.raises(WeightsChecksumError, match=f'{digest}.*deadbeef'):
        resolve_weights(bad, url=f'{base}/{bad}')
    with pytest.raises(WeightsChecksumError, match='0000000000'):
        resolve_weights('r18.pth', url=f'{base}/{bad}', sha256='0' * 64)
    assert os.listdir(caches['hub']) == []  # nothing kept under the real name, no temp file


def test_hugging_face_cache_copy_loads_with_its_own_layout(caches, monkeypatch) -> None:
    """smp-hub / timm copies hold the encoder's own names: found in the HF cache, loaded with
    ``hf['layout']`` although the paper file's layout differs."""
    from safetensors.torch import save

    monkeypatch.setenv('UDA_WEIGHTS_OFFLINE', '1')
    torch.manual_seed(1)
    saved = SMPSegmentor(**UNET).net.encoder.state_dict()
    _hf_snapshot(caches['hf'], 'smp-hub/r18', 'model.safetensors', save(saved))
    seg = SMPSegmentor(
        **UNET,
        encoder_checkpoint=dict(
            file='r18_paper.pth', layout='deeplab_caffe', hf=dict(repo_id='smp-hub/r18')
        ),
    )
    assert seg.checkpoint_report is not None and seg.checkpoint_report.layout.startswith('auto')
    assert all(torch.equal(seg.net.encoder.state_dict()[k], v) for k, v in saved.items())


@pytest.mark.parametrize(
    'prefix, extra',
    [
        ('Scale.', 'Scale.layer5.conv2d_list.0.weight'),  # AdaptSegNet's COCO init
        ('model.', 'model.layer5.conv2d_list.3.bias'),  # ADVENT's: one word, dropped
        ('', 'layer5.conv2d_list.0.weight'),  # DACS's COCO init: bare names
    ],
)
def test_deeplab_caffe_layout(tmp_path, prefix, extra) -> None:
    torch.manual_seed(2)
    saved = torchvision.models.resnet18(weights=None).state_dict()
    saved.pop('fc.weight'), saved.pop('fc.bias')
    raw = {prefix + k: v for k, v in saved.items()} | {extra: torch.randn(21, 512, 3, 3)}
    torch.save(raw, tmp_path / 'init.pth')
    seg = SMPSegmentor(
        **UNET, encoder_checkpoint=dict(file=str(tmp_path / 'init.pth'), layout='deeplab_caffe')
    )
    own = seg.net.encoder.state_dict()
    assert all(torch.equal(own[k], v) for k, v in saved.items())
    assert seg.checkpoint_report is not None and seg.checkpoint_report.share == 1.0
    assert seg.checkpoint_report.dropped == [extra[len(prefix) :]]


def test_hub_encoder_weights_offline_is_one_line(monkeypatch) -> None:
    """smp's own ``encoder_weights='imagenet'`` download failing (after its retries): one line."""
    import segmentation_models_pytorch.encoders as encoders
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline(*args, **kwargs):
        raise LocalEntryNotFoundError('cannot find the requested files\nin the local cache')

    monkeypatch.setattr(encoders, 'hf_hub_download', offline)
    with pytest.raises(WeightsNotFoundError) as info:
        SMPSegmentor(**dict(UNET, encoder_weights='imagenet'))
    msg = str(info.value)
    assert '\n' not in msg and "encoder_weights='imagenet'" in msg
    assert 'encoder_weights=None' in msg and 'LocalEntryNotFoundError' in msg


# --- the leaf configs ---------------------------------------------------------------------
PAPER = ('_deeplabv2-resnet101_', '_segformer-mit-b5_', '_deeplabv3plus-resnet101_', 'dinov2')
LEAVES = sorted(
    p
    for p in glob.glob(osp.join(ROOT, 'configs', '*', '*.py'))
    if '/_base_/' not in p and '/pretrain/' not in p
)
PAPER_LEAVES = [p for p in LEAVES if any(k in osp.basename(p) for k in PAPER)]


def _segmentor(path: str) -> dict:
    return Config.fromfile(path).model.segmentor.to_dict()


@pytest.mark.parametrize('path', PAPER_LEAVES, ids=osp.basename)
def test_every_paper_leaf_names_its_init(path) -> None:
    seg = _segmentor(path)
    init = seg.get('encoder_checkpoint')
    assert isinstance(init, dict), f'{path}: no init (encoder_checkpoint) named'
    assert seg.get('encoder_weights') is None, 'one init, by file, not smp ImageNet weights'
    assert init.get('url') or init.get('manual'), 'where the file comes from'
    assert osp.basename(init['file']) == init['file'], 'a file name, found by the resolver'


@pytest.mark.parametrize('path', [p for p in LEAVES if p not in PAPER_LEAVES], ids=osp.basename)
def test_small_leaves_stay_random_init(path) -> None:
    """The README's commands and the tests run without network: no init file, no download."""
    seg = _segmentor(path)
    assert seg.get('encoder_weights') is None and not seg.get('encoder_checkpoint')


def test_paper_inits_name_the_reference_files() -> None:
    by_leaf = {
        osp.basename(p).split('_')[0] + '_' + osp.basename(p).split('_')[1]: p for p in LEAVES
    }
    r101 = _segmentor(by_leaf['sac_deeplabv2-resnet101'])['encoder_checkpoint']
    assert r101['file'] == 'resnet101-5d3b4d8f.pth'  # visinf/da-sac INIT_MODEL
    assert r101['url'] == 'https://download.pytorch.org/models/resnet101-5d3b4d8f.pth'
    assert expected_sha256(r101['file'], r101.get('sha256')) == '5d3b4d8f'
    assert r101['layout'] == 'torchvision'
    advent = _segmentor(by_leaf['advent_deeplabv2-resnet101'])['encoder_checkpoint']
    assert advent['file'] == 'DeepLab_resnet_pretrained_imagenet.pth'
    coco = _segmentor(by_leaf['adaptsegnet_deeplabv2-resnet101'])['encoder_checkpoint']
    assert coco['url'].endswith('/DeepLab_resnet_pretrained_init-f81d91e8.pth')
    mit = _segmentor(by_leaf['mic_segformer-mit-b5'])['encoder_checkpoint']
    assert mit['file'] == 'mit_b5.pth' and '1d7I50jVjtCddnhpf-lqj8-f13UyCzoW1' in mit['manual']
    dino = _segmentor(by_leaf['mic_dpt-vit-small-dinov2'])
    assert dino['encoder_checkpoint']['url'] == (
        'https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/dinov2_vits14_pretrain.pth'
    )
    assert dino['encoder_checkpoint']['layout'] == 'dinov2'


def test_unimatch_init_fits_the_deeplabv3plus_encoder() -> None:
    """UniMatch's resnet101.pth (model/backbone/resnet.py): a 64-64-128 3x3 stem as
    ``conv1.{0,1,3,4,6}`` + ``bn1``, 128 channels into layer1, conv+BN downsample. Its names and
    shapes, written out here, are those of the leaves' encoder."""
    seg = dict(
        _segmentor(
            osp.join(
                ROOT,
                'configs/semi/unimatch_deeplabv3plus-resnet101_84k_cityscapes-1of16-801x801.py',
            )
        )
    )
    seg.pop('type'), seg.pop('encoder_checkpoint')
    own = {k: tuple(v.shape) for k, v in SMPSegmentor(**seg).net.encoder.model.state_dict().items()}
    ref: dict[str, tuple] = {}

    def bn(name: str, c: int) -> None:
        ref.update({f'{name}.{p}': (c,) for p in ('weight', 'bias', 'running_mean', 'running_var')})
        ref[f'{name}.num_batches_tracked'] = ()

    ref['conv1.0.weight'], ref['conv1.3.weight'] = (64, 3, 3, 3), (64, 64, 3, 3)
    ref['conv1.6.weight'] = (128, 64, 3, 3)
    bn('conv1.1', 64), bn('conv1.4', 64), bn('bn1', 128)
    inplanes = 128
    for i, (planes, blocks) in enumerate([(64, 3), (128, 4), (256, 23), (512, 3)], 1):
        for b in range(blocks):
            pre = f'layer{i}.{b}'
            ref[f'{pre}.conv1.weight'] = (planes, inplanes, 1, 1)
            ref[f'{pre}.conv2.weight'] = (planes, planes, 3, 3)
            ref[f'{pre}.conv3.weight'] = (planes * 4, planes, 1, 1)
            bn(f'{pre}.bn1', planes), bn(f'{pre}.bn2', planes), bn(f'{pre}.bn3', planes * 4)
            if b == 0:
                ref[f'{pre}.downsample.0.weight'] = (planes * 4, inplanes, 1, 1)
                bn(f'{pre}.downsample.1', planes * 4)
            inplanes = planes * 4
    assert own == ref


def test_building_a_paper_leaf_offline_is_one_error_line(caches, monkeypatch, capsys) -> None:
    """tools/train.py's convention: ``error: <one line>`` on stderr, exit 2, no random init."""
    from mmengine.registry import DefaultScope

    from uda.engine.config import run_tool
    from uda.registry import MODELS

    monkeypatch.setenv('UDA_WEIGHTS_OFFLINE', '1')
    monkeypatch.delenv('UDA_DEBUG', raising=False)
    seg = _segmentor(
        osp.join(ROOT, 'configs/sac/sac_deeplabv2-resnet101_40k_gta2cityscapes-512x512.py')
    )

    def main() -> None:
        with DefaultScope.overwrite_default_scope('uda'):
            MODELS.build(seg)

    with pytest.raises(SystemExit) as info:
        run_tool(main)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0].startswith('error: ') and 'UDA_DEBUG' in err[1]
    for part in (
        'resnet101-5d3b4d8f.pth',
        'https://download.pytorch.org/models/resnet101-5d3b4d8f.pth',
        caches['hub'],
        'model.segmentor.encoder_checkpoint=None',
    ):
        assert part in err[0], part


def test_load_from_skips_the_init() -> None:
    cfg = Config(
        dict(
            model=dict(
                segmentor=dict(
                    type='SMPSegmentor',
                    encoder_checkpoint=dict(file='resnet101-5d3b4d8f.pth'),
                    encoder_weights=None,
                )
            ),
            load_from=None,
        )
    )
    assert not skip_init_for_warm_start(cfg) and 'encoder_checkpoint' in cfg.model.segmentor
    cfg.load_from = 'work_dirs/abn/iter_40000.pth'
    assert skip_init_for_warm_start(cfg)
    assert 'encoder_checkpoint' not in cfg.model.segmentor
    assert cfg.model.segmentor.type == 'SMPSegmentor'
