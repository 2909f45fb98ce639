"""A rank that dies or hangs: the survivors stop with an error naming it, instead of hanging.

Every collective of a distributed run waits at most ``env_cfg.dist_cfg.timeout`` seconds
(gloo here: :func:`uda.engine.dist.prepare_distributed`; NCCL: mmengine's ``init_dist``).
When one fails, gloo's message names only a socket ("Connection closed by peer
[10.0.0.3]:41237", "Timed out waiting 1800000ms for recv operation"). The rendezvous store
outlives the process group's sockets, so :func:`describe_rank_failure` has each survivor check
in there under ``uda/failed/<rank>`` and wait a short grace period for the others; the ranks
that never check in are the ones that died or hang. A store that cannot be reached means its
host is gone: rank 0, or the torchrun agent.
"""

from __future__ import annotations

import re
import time
from typing import Any, Optional

import torch.distributed as dist

# What gloo and NCCL say when a peer died, hung past the timeout, or was aborted.
_COLLECTIVE_FAILURE = re.compile(
    r'Connection closed by peer|Connection reset by peer|Timed out waiting \d+ms|'
    r'Broken pipe|pair closure|Socket Timeout|NCCL communicator was aborted|'
    r'Watchdog caught collective operation timeout|ProcessGroupGloo|ProcessGroupNCCL'
)


def is_collective_failure(err: BaseException) -> bool:
    """Whether ``err`` is a distributed collective failing because of another rank."""
    return (
        isinstance(err, RuntimeError)
        and dist.is_available()
        and dist.is_initialized()
        and bool(_COLLECTIVE_FAILURE.search(str(err)))
    )


def _store() -> Optional[Any]:
    try:
        from torch.distributed.distributed_c10d import _get_default_store

        return _get_default_store()
    except Exception:  # noqa: BLE001 - any failure means: no store to ask
        return None


def silent_ranks(store: Any, rank: int, world_size: int, grace_s: float) -> list[int]:
    """Check in as ``rank`` and return the ranks that have not checked in after ``grace_s``."""
    store.set(f'uda/failed/{rank}', str(time.time()))
    others = [r for r in range(world_size) if r != rank]
    deadline = time.monotonic() + grace_s
    while True:
        missing = [r for r in others if not store.check([f'uda/failed/{r}'])]
        if not missing or time.monotonic() >= deadline:
            return missing
        time.sleep(0.2)


def describe_rank_failure(err: BaseException, grace_s: float = 10.0) -> str:
    """The one-line error of a survivor: which rank(s) died or hang, and what to do."""
    rank, world = dist.get_rank(), dist.get_world_size()
    cause = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    cause = re.sub(r'^\[[^\]]*\]\s*', '', cause)  # gloo's [source file:line] prefix
    store = _store()
    try:
        if store is None:
            raise RuntimeError('no store')
        silent = silent_ranks(store, rank, world, grace_s)
        who = f'rank {silent[0]} of {world} ' if len(silent) == 1 else f'ranks {silent} of {world} '
        who = (
            who + f'did not answer (checked for {grace_s:.0f} s): it died or hangs'
            if silent
            else 'every rank answered afterwards, so a rank was slower than '
            'env_cfg.dist_cfg.timeout'
        )
    except Exception:  # noqa: BLE001 - the store's host is gone too
        who = 'rank 0 (which hosts the rendezvous store) or the torchrun agent is gone'
    return (
        f"rank {rank}: a collective operation failed ({cause}); {who}. Check that rank's log "
        '(killed, out of memory, a node lost). The last checkpoint is intact: continue with '
        'tools/train.py CONFIG --resume. A rank that hangs stops the others after '
        'env_cfg.dist_cfg.timeout seconds.'
    )
