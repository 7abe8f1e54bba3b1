"""Verify records in a process pool, results in input order, with a bounded number of records in flight.

``multiprocessing.Pool.imap`` would drain the whole input into its task queue, which for a streamed
tar means holding the whole dataset in memory; here at most ``max_in_flight`` batches are submitted
ahead of the one being consumed. Workers are started with ``forkserver`` (``spawn`` where that is
missing), never ``fork``: the parent may run fsspec's I/O thread.
"""
from __future__ import annotations

import logging
import multiprocessing
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from itertools import islice

from .records import Rejected, SourceRecord, Verified
from .verify import VerifyConfig, verify_record

log = logging.getLogger(__name__)

_config: VerifyConfig | None = None


def _init_worker(config: VerifyConfig) -> None:
    """Runs once per worker: the config (with its possibly large wnid set) is sent once, not per batch."""
    global _config
    _config = config


def _verify_batch(records: list[SourceRecord]) -> list[Verified | Rejected]:
    if _config is None:  # pragma: no cover - the initializer always ran
        raise RuntimeError("verify worker started without a config")
    return [verify_record(r, _config) for r in records]


def _context() -> multiprocessing.context.BaseContext:
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def verify_ordered(records: Iterable[SourceRecord], config: VerifyConfig, workers: int,
                   batch_size: int = 16, max_in_flight: int | None = None) -> Iterator[Verified | Rejected]:
    """``verify_record(r, config)`` for each record, in input order; ``workers`` <= 1 runs in-process."""
    if workers <= 1:
        for record in records:
            yield verify_record(record, config)
        return
    limit = max_in_flight or 4 * workers
    it = iter(records)
    pending: deque[Future[list[Verified | Rejected]]] = deque()
    executor = ProcessPoolExecutor(max_workers=workers, mp_context=_context(), initializer=_init_worker,
                                   initargs=(config,))
    try:
        exhausted = False
        while True:
            while not exhausted and len(pending) < limit:
                batch = list(islice(it, batch_size))
                if not batch:
                    exhausted = True
                    break
                pending.append(executor.submit(_verify_batch, batch))
            if not pending:
                break
            yield from pending.popleft().result()
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
