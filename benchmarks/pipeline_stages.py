"""benchmarks/pipeline.py with the CPU time of each stage of the tick, printed after it.

Wraps, in this process: ``detect_pieces`` (standardise and score), ``commit_batch``, the
incident events and the incident log lines with ``time.thread_time``; the whole tick with
``time.process_time`` (all threads) and the main thread's own CPU (collection: JSON decoding
and frames, and the orchestration); the garbage collector's time through ``gc.callbacks``; and
the CPU of the child processes (Prometheus, the Prefect server) from ``/proc``. The wrapping
slows the tick a little: compare runs of this script with each other, not with pipeline.py.

    .venv/bin/python benchmarks/pipeline_stages.py --detectors 1000
    TREE=/path/to/other/worktree .venv/bin/python benchmarks/pipeline_stages.py ...  # another tree
"""

from __future__ import annotations

import collections
import gc
import os
import runpy
import sys
import time
from pathlib import Path
from typing import Any

TREE = os.environ.get("TREE", str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, TREE)

cpu: collections.Counter[str] = collections.Counter()
collector = {"seconds": 0.0, "count": 0, "started": None}


def _timed(name: str, fn: Any) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            cpu[name] += time.thread_time() - started

    return wrapper


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        collector["started"] = time.perf_counter()
    elif collector["started"] is not None:
        collector["seconds"] += time.perf_counter() - collector["started"]
        collector["count"] += 1


def _children_cpu() -> dict[int, tuple[float, str]]:
    """CPU seconds of every descendant process, by pid (with its command line)."""
    tick, me, procs = os.sysconf("SC_CLK_TCK"), os.getpid(), {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cmd = Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")[:60]
        except OSError:
            continue
        procs[int(pid)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick, cmd)
    out = {}
    for pid, (ppid, seconds, cmd) in procs.items():
        while ppid and ppid != me and ppid in procs:
            ppid = procs[ppid][0]
        if ppid == me:
            out[pid] = (seconds, cmd)
    return out


def main() -> None:
    gc.callbacks.append(_on_gc)
    import flows.metrics as metrics
    import tasks.batch as batch
    from aiops.store.batch import BatchStore

    batch.detect_pieces = _timed("standardise and score (detect_pieces)", batch.detect_pieces)
    BatchStore.commit_batch = _timed("commit (commit_batch)", BatchStore.commit_batch)
    batch.emit_incidents = _timed("incident events (emit_incidents)", batch.emit_incidents)
    batch._log_incidents = _timed("incident log lines", batch._log_incidents)
    tick = metrics.detect_metrics.fn

    async def measured(*args: Any, **kwargs: Any) -> Any:
        collector.update(seconds=0.0, count=0)
        cpu.clear()
        process, main_thread, children, wall = (
            time.process_time(),
            time.thread_time(),
            _children_cpu(),
            time.perf_counter(),
        )
        try:
            return await tick(*args, **kwargs)
        finally:
            wall = time.perf_counter() - wall
            process, main_thread = time.process_time() - process, time.thread_time() - main_thread
            print(
                f"stages: wall {wall:.2f} s; CPU: this process {process:.2f} s, "
                f"its main thread {main_thread:.2f} s, garbage collector "
                f"{collector['seconds']:.2f} s in {collector['count']} collections"
            )
            for name, seconds in cpu.items():
                print(f"stages: {name}: {seconds:.2f} s")
            for pid, (seconds, cmd) in _children_cpu().items():
                used = seconds - children.get(pid, (0.0, ""))[0]
                if used > 0.05:
                    print(f"stages: child {cmd}: {used:.2f} s")

    metrics.detect_metrics.fn = measured
    sys.argv[0] = f"{TREE}/benchmarks/pipeline.py"
    runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    main()
