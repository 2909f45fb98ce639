"""Where a network's initial weights come from: one resolver for every init file.

A paper config names its initialisation by file name, URL and checksum (the ImageNet
ResNet-101 of torchvision for da-sac, ADVENT's and AdaptSegNet's Caffe DeepLab inits, the
ImageNet MiT-B5 of DAFormer / MIC, UniMatch's deep-stem ResNet-101, the DINOv2 release ...).
:func:`resolve_weights` finds that file, in this order:

1. the explicit path in the config (``encoder_checkpoint.file``), when it exists;
2. the weights folder named by the environment variable ``UDA_WEIGHTS`` (several folders
   separated by ``os.pathsep``), under the file's name;
3. the standard caches: torch hub's ``<torch.hub.get_dir()>/checkpoints/<name>`` (where
   torchvision, ``torch.hub.load`` and timm's URL downloads put files), and the Hugging Face
   hub cache for a declared ``hf=dict(repo_id=..., filename=...)`` (where smp and timm put
   theirs);
4. a download, torch.hub-style (pytorch/pytorch torch/hub.py ``download_url_to_file``): into
   a temporary file beside the destination in the torch hub cache, the SHA-256 compared with
   the ``sha256`` of the config or with the hash prefix of the file name (``name-<hex>.pth``,
   torch.hub ``HASH_REGEX``), then renamed atomically into place; or ``hf_hub_download`` for a
   file that only the Hugging Face hub serves.

When none of these gives the file (offline, no direct URL, a failed download) the error is
ONE line naming the file, the URL (or where to get it by hand), the folder to put it in, and
the config key to set to None for a deliberate from-scratch run: a paper config never trains
from random weights silently. ``UDA_WEIGHTS_OFFLINE=1`` (or ``HF_HUB_OFFLINE=1``) skips the
download step.
"""

from __future__ import annotations

import hashlib
import os
import os.path as osp
import re
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Optional

import torch
from mmengine.logging import print_log

ENV_FOLDER = 'UDA_WEIGHTS'
ENV_OFFLINE = 'UDA_WEIGHTS_OFFLINE'
# torch.hub's convention: the hex digits after the last '-' of the file name are the leading
# digits of its SHA-256 (pytorch/pytorch torch/hub.py HASH_REGEX).
HASH_REGEX = re.compile(r'-([a-f0-9]+)\.')


class WeightsNotFoundError(FileNotFoundError):
    """An init file is nowhere to be found and could not be downloaded (one-line message)."""


class WeightsChecksumError(OSError):
    """A downloaded init file does not have the SHA-256 its config or file name promises."""


@dataclass(frozen=True)
class ResolvedWeights:
    """A found init file: its local ``path`` and ``source``, the step that gave it
    (``'file'``, ``'UDA_WEIGHTS'``, ``'torch hub cache'``, ``'huggingface cache'``,
    ``'download'``, ``'huggingface download'``)."""

    path: str
    source: str


def weights_folders() -> list[str]:
    """The folders of ``$UDA_WEIGHTS`` (empty when unset)."""
    value = os.environ.get(ENV_FOLDER, '')
    return [osp.expanduser(p) for p in value.split(os.pathsep) if p]


def torch_hub_checkpoints() -> str:
    """torch hub's file cache (``$TORCH_HOME/hub/checkpoints``), read at call time."""
    return osp.join(torch.hub.get_dir(), 'checkpoints')


def hf_cache_dir() -> str:
    """The Hugging Face hub cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``), at call time."""
    if os.environ.get('HF_HUB_CACHE'):
        return osp.expanduser(os.environ['HF_HUB_CACHE'])
    if os.environ.get('HF_HOME'):
        return osp.join(osp.expanduser(os.environ['HF_HOME']), 'hub')
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def offline() -> bool:
    """True when downloads are switched off (``UDA_WEIGHTS_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``)."""
    return any(os.environ.get(v, '') not in ('', '0') for v in (ENV_OFFLINE, 'HF_HUB_OFFLINE'))


def expected_sha256(file: str, sha256: Optional[str] = None) -> Optional[str]:
    """The SHA-256 (or its leading hex digits) a download must have: ``sha256`` if given,
    else the hash suffix of the file name (``resnet101-5d3b4d8f.pth`` -> ``5d3b4d8f``)."""
    if sha256:
        if not re.fullmatch(r'[0-9a-fA-F]{8,64}', sha256):
            raise ValueError(
                f'sha256={sha256!r} for {file} is not a SHA-256 hex digest (or its first 8+ '
                'digits).'
            )
        return sha256.lower()
    match = HASH_REGEX.search(osp.basename(file))
    return match.group(1) if match else None


def sha256_of(path: str) -> str:
    """The SHA-256 hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, dest: str, sha256: Optional[str] = None, timeout: float = 60.0) -> str:
    """Download ``url`` to ``dest`` as torch.hub does: a temporary file in the destination's
    folder, its SHA-256 checked against ``sha256`` (a full digest or a prefix), then an atomic
    rename, so an interrupted or corrupt download never sits in the cache under the real name.

    Raises:
        WeightsChecksumError: The digest differs (the temporary file is removed).
        OSError: The URL could not be read (``urllib.error.URLError``, a timeout).
    """
    folder = osp.dirname(osp.abspath(dest))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=osp.basename(dest) + '.', suffix='.partial', dir=folder)
    digest = hashlib.sha256()
    try:
        request = urllib.request.Request(url, headers={'User-Agent': 'uda'})
        with os.fdopen(fd, 'wb') as out, urllib.request.urlopen(request, timeout=timeout) as r:
            for chunk in iter(lambda: r.read(1 << 20), b''):
                out.write(chunk)
                digest.update(chunk)
        got = digest.hexdigest()
        if sha256 and not got.startswith(sha256.lower()):
            raise WeightsChecksumError(
                f'the download of {url} has SHA-256 {got}, not the expected {sha256}... '
                '(a corrupt or different file; it was not kept). Retry, or download it by '
                f'hand and check its digest before putting it in {folder}'
            )
        os.replace(tmp, dest)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    return dest


def _hf_cached(hf: dict) -> Optional[str]:
    from huggingface_hub import try_to_load_from_cache

    path = try_to_load_from_cache(
        hf['repo_id'],
        hf.get('filename', 'model.safetensors'),
        cache_dir=hf_cache_dir(),
        revision=hf.get('revision'),
    )
    return path if isinstance(path, str) and osp.isfile(path) else None


def _hf_download(hf: dict) -> str:
    from huggingface_hub import hf_hub_download

    return str(
        hf_hub_download(
            hf['repo_id'],
            hf.get('filename', 'model.safetensors'),
            revision=hf.get('revision'),
            cache_dir=hf_cache_dir(),
        )
    )


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f'{type(err).__name__}: {text[0] if text else ""}'.rstrip(': ')


def resolve_weights(
    file: str,
    url: Optional[str] = None,
    sha256: Optional[str] = None,
    manual: Optional[str] = None,
    hf: Optional[dict] = None,
    key: str = 'model.segmentor.encoder_checkpoint',
    timeout: float = 60.0,
) -> ResolvedWeights:
    """Find the init file ``file`` (see the module docstring for the order) and return it.

    Args:
        file: A path, or the file's name (``resnet101-5d3b4d8f.pth``); the name is looked up
            in ``$UDA_WEIGHTS`` and the caches, and is the name it is downloaded under.
        url: Direct download URL, or None when the file has none (Google Drive, OneDrive).
        sha256: Full SHA-256 or its leading digits; default: the hash suffix of ``file``.
        manual: Where to get the file by hand, for the error message (e.g. a Google Drive id).
        hf: ``dict(repo_id=..., filename='model.safetensors', revision=None)``: a Hugging Face
            hub copy accepted from the cache and downloaded when there is no ``url``.
        key: The config key that names this init, for the from-scratch hint of the error.
        timeout: Seconds without data before a download is given up.

    Returns:
        The :class:`ResolvedWeights` (the path and which step found it; also logged).

    Raises:
        WeightsNotFoundError: One line: file, URL / manual source, folder, the None key.
        WeightsChecksumError: A download whose SHA-256 differs from the expected one.
    """
    name = osp.basename(file)
    explicit = osp.expanduser(file)
    found: Optional[ResolvedWeights] = None
    if osp.isfile(explicit):
        found = ResolvedWeights(explicit, 'file')
    if found is None:
        for folder in weights_folders():
            for path in dict.fromkeys((osp.join(folder, file), osp.join(folder, name))):
                if osp.isfile(path):
                    found = ResolvedWeights(path, ENV_FOLDER)
                    break
            if found is not None:
                break
    hub = torch_hub_checkpoints()
    if found is None and osp.isfile(osp.join(hub, name)):
        found = ResolvedWeights(osp.join(hub, name), 'torch hub cache')
    if found is None and hf:
        cached = _hf_cached(hf)
        if cached:
            found = ResolvedWeights(cached, 'huggingface cache')
    failure = ''
    if found is None and not offline():
        try:
            if url:
                path = download(url, osp.join(hub, name), expected_sha256(file, sha256), timeout)
                found = ResolvedWeights(path, 'download')
            elif hf:
                found = ResolvedWeights(_hf_download(hf), 'huggingface download')
        except WeightsChecksumError:
            raise
        except Exception as err:  # urllib / socket / huggingface_hub errors: all mean "not here"
            failure = f' and its download failed ({_first_line(err)})'
    elif found is None:
        failure = f' and downloads are off ({ENV_OFFLINE} / HF_HUB_OFFLINE)'
    if found is not None:
        print_log(f'weights {name}: {found.path} (from {found.source})', logger='current')
        return found
    folders = weights_folders()
    where = f'${ENV_FOLDER} ({os.pathsep.join(folders)})' if folders else f'${ENV_FOLDER} (unset)'
    hf_text = f', Hugging Face cache {hf_cache_dir()} ({hf["repo_id"]})' if hf else ''
    if url:
        source = f'download it from {url}'
    elif manual:
        source = f'it has no direct download: get it from {manual}'
    elif hf:
        source = f'it comes from the Hugging Face hub repo {hf["repo_id"]}'
    else:
        source = 'give the path of an existing file'
    raise WeightsNotFoundError(
        f'init weights {name} not found (looked at {file}, {where}, torch hub cache {hub}'
        f'{hf_text}){failure}: {source} and put it in {folders[0] if folders else hub} (or a '
        f'folder named by ${ENV_FOLDER}), or set {key}=None for a deliberate from-scratch run.'
    )


# The keys of ``segmentor.encoder_checkpoint`` that say where its file comes from; the others
# (layout, min_matched, checkpoint_key, revise_keys) say how it loads.
SOURCE_KEYS = ('url', 'sha256', 'manual', 'hf')


def resolve_encoder_checkpoint(
    ckpt: dict[str, Any], key: str = 'model.segmentor.encoder_checkpoint'
) -> dict[str, Any]:
    """``encoder_checkpoint`` with its file resolved: the keyword arguments of
    :func:`uda.models.encoder_checkpoint.load_encoder_checkpoint`.

    A Hugging Face copy (``hf``) holds the weights in timm / smp names, so it loads with
    ``hf['layout']`` (default ``'auto'``) instead of the paper file's layout.
    """
    args = {k: v for k, v in ckpt.items() if k not in SOURCE_KEYS}
    hf = ckpt.get('hf')
    if hf is not None and (not isinstance(hf, dict) or 'repo_id' not in hf):
        raise ValueError(
            f"{key}.hf={hf!r}: give dict(repo_id='owner/name', filename='model.safetensors', "
            "revision=None, layout='auto')."
        )
    found = resolve_weights(
        str(ckpt['file']),
        url=ckpt.get('url'),
        sha256=ckpt.get('sha256'),
        manual=ckpt.get('manual'),
        hf=hf,
        key=key,
    )
    args['file'] = found.path
    if found.source.startswith('huggingface') and hf is not None:
        args['layout'] = hf.get('layout', 'auto')
    return args


def hub_weights_error(encoder_name: str, weights: str, err: BaseException) -> WeightsNotFoundError:
    """The one-line error for ``encoder_weights=<name>`` that smp / timm could not fetch from
    the Hugging Face hub (they raise after several retries, with a multi-line message)."""
    return WeightsNotFoundError(
        f'segmentor.encoder_weights={weights!r} for {encoder_name}: smp / timm could not fetch '
        f'these weights from the Hugging Face hub into {hf_cache_dir()} ({_first_line(err)}): '
        'run once with network access (or copy that cache here), or set '
        'model.segmentor.encoder_weights=None for a deliberate from-scratch run.'
    )


def skip_init_for_warm_start(cfg: Any) -> bool:
    """Drop the segmentor's init weights from a training config that loads a checkpoint.

    ``load_from`` (``--resume PATH``, a warm start from an ABN run as SAC does) replaces every
    weight after the network is built, so reading, or downloading, the ImageNet / COCO init
    first is wasted, and an error where the file is absent. Returns True when it dropped them.
    """
    model = cfg.get('model')
    segmentor = model.get('segmentor') if isinstance(model, dict) else None
    if not cfg.get('load_from') or not isinstance(segmentor, dict):
        return False
    if segmentor.get('encoder_checkpoint') is None and segmentor.get('encoder_weights') is None:
        return False
    from uda.models.segmentor import architecture_only

    model['segmentor'] = architecture_only(segmentor)
    print_log(
        f'load_from={cfg.load_from} replaces every weight: the init weights of '
        'model.segmentor (encoder_checkpoint / encoder_weights) are not read.',
        logger='current',
    )
    return True
