"""Scoring a batch's pieces in worker processes: the tick's CPU-heavy step off the GIL.

A tick's own process collects (HTTP, JSON), orchestrates and commits; standardising and
scoring a piece (:func:`aiops.tick.detect_piece`) is pure CPU on data the piece owns, so a
batch's pieces can be scored by other processes while the tick goes on with the next batch.
One pool per process, made on first use: its workers are forked from a fork server that has
imported the scoring code once (``aiops.tick``: pandas, numpy, the numba kernels), so a
worker never imports it again and never inherits the threads of the process that asks. (As
``multiprocessing`` does for every new process, a worker imports the asking process' main
module without running its ``__main__`` block: for a flow run started by a Prefect worker or
``aiops serve`` that is ``prefect.engine``, about 1.5 s once per flow run.)

Results are the same as in-process: the same function runs on the same inputs (pickled), and
a detector whose piece fails gets its error's message, exactly as :func:`detect_pieces` gives
it. A pool that breaks (a worker killed) is replaced, and the pieces it held are scored
in-process, so a tick never loses a detector to the pool.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from aiops.errors import AiopsError
from aiops.pipeline import DetectionRun
from aiops.tick import DetectorWork, detect_piece, detect_pieces, error_message

log = logging.getLogger(__name__)

#: Below this many pieces a batch is scored in-process: shipping it costs more than it saves.
MIN_PIECES = 16
#: Pieces per job sent to a worker (a batch of 100 on 2 workers: 4 jobs, 2 each).
PIECES_PER_JOB = 25

_pool: ProcessPoolExecutor | None = None
_pool_size = 0
_lock = threading.Lock()


def auto_processes() -> int:
    """Worker processes when ``AIOPS_SCORE_PROCESSES`` is unset: the CPUs this process may use
    less two, at most 4; none on 2 CPUs or fewer.

    Two are left: one for the tick's own process (collecting, committing) and one for what it
    talks to (the Prefect server, the datasource), which share the machine under ``aiops up``.
    Measured on 2 CPUs (``benchmarks/pipeline.py --detectors 1000``, docs/benchmarks.md):
    scoring in a worker halves the tick process' own CPU (10-11 s to 5-6 s) but the tick took
    as long (11.5-13.2 s either way), both cores being busy anyway, and the pool's memory
    (~250 MiB a process) took the tree from ~525 MiB to ~955 MiB. With CPUs to spare the tick's
    process is the limit instead (0.87 of a core without workers), which is what they relieve.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(0, min(cpus - 2, 4))


def _shared_pool(processes: int) -> ProcessPoolExecutor:
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size != processes:
            if _pool is not None:
                _pool.shutdown(wait=False, cancel_futures=True)
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["aiops.tick"])
            _pool = ProcessPoolExecutor(max_workers=processes, mp_context=ctx)
            _pool_size = processes
            log.info("scoring pool started: %d worker processes", processes)
        return _pool


def _drop_pool(broken: ProcessPoolExecutor) -> None:
    global _pool
    with _lock:
        if _pool is broken:
            _pool = None
    broken.shutdown(wait=False, cancel_futures=True)


def worker_pids() -> list[int]:
    """The pool's processes: its workers and the fork server they come from (for figures
    such as peak memory); empty without a pool."""
    from multiprocessing import forkserver

    with _lock:
        pool = _pool
    if pool is None:
        return []
    pids = list(getattr(pool, "_processes", None) or {})
    server = getattr(forkserver._forkserver, "_forkserver_pid", None)
    return [*pids, *([server] if server else [])]


def shutdown() -> None:
    """Stop the pool's workers (tests, and a process that is done ticking)."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


def _score_job(
    works: list[DetectorWork], flow_run_id: str | None
) -> list[tuple[str, DetectionRun | str]]:
    """In a worker: each piece scored, or its error's message (exceptions of any class cross
    processes badly; the message is all the tick keeps)."""
    out: list[tuple[str, DetectionRun | str]] = []
    for work in works:
        assert work.collected is not None
        try:
            out.append((work.id, detect_piece(work, work.collected["frame"], flow_run_id)))
        except Exception as exc:  # a model error fails its detector only
            out.append((work.id, error_message(exc)))
    return out


def score_pieces(
    works: list[DetectorWork], flow_run_id: str | None, processes: int
) -> dict[str, DetectionRun | BaseException]:
    """:func:`aiops.tick.detect_pieces` for ``works``, on ``processes`` workers when the batch
    is big enough (:data:`MIN_PIECES`), else in-process. Sets ``work.run``; a failed piece
    maps to its error (logged here, as in-process)."""
    if processes <= 0 or len(works) < MIN_PIECES:
        return detect_pieces(works, flow_run_id)
    pool = _shared_pool(processes)
    jobs: list[tuple[list[DetectorWork], Future[Any] | None]] = []
    for i in range(0, len(works), PIECES_PER_JOB):
        chunk = works[i : i + PIECES_PER_JOB]
        try:
            jobs.append((chunk, pool.submit(_score_job, chunk, flow_run_id)))
        except (BrokenProcessPool, RuntimeError) as exc:  # broken, or shut down meanwhile
            log.warning("scoring pool cannot take work (%s): scoring in-process", exc)
            _drop_pool(pool)
            jobs.append((chunk, None))
    out: dict[str, DetectionRun | BaseException] = {}
    for chunk, future in jobs:
        results = None
        if future is not None:
            try:
                results = future.result()
            except Exception as exc:  # the pool's own failure (a piece's is in its result)
                log.warning(
                    "scoring worker failed (%s): %d pieces scored in-process",
                    error_message(exc),
                    len(chunk),
                )
                if isinstance(exc, BrokenProcessPool | CancelledError):
                    _drop_pool(pool)
        if results is None:
            out.update(detect_pieces(chunk, flow_run_id))
            continue
        by_id = dict(results)
        for work in chunk:
            result = by_id[work.id]
            if isinstance(result, str):
                log.error(
                    "detection failed (%s): %s", work.context, result, extra={"detector": work.id}
                )
                out[work.id] = AiopsError(result)
            else:
                work.run = out[work.id] = result
    return out
