"""aiops.supervisor: children stopped newest first, grandchildren that left their parent's
session (as Prefect's flow runs do) swept up, nothing left behind.

The supervisor runs in a subprocess of the test: it makes its process a child subreaper and
sweeps every descendant, which must not touch the test session's own servers."""

from __future__ import annotations

import json
import subprocess
import sys

from aiops.supervisor import process_alive, process_start_time

SCRIPT = r"""
import json, subprocess, sys
from aiops.supervisor import Supervisor, descendants
sup = Supervisor(stop_timeout=5)
# a child that starts a grandchild in a new session and then ignores SIGTERM (both just wait)
code = (
    "import signal, subprocess, sys\n"
    "g = subprocess.Popen([sys.executable, '-c', 'import signal; signal.pause()'], start_new_session=True)\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print(g.pid, flush=True)\n"
    "while True: signal.pause()\n"
)
child = sup.start("stubborn", [sys.executable, "-c", code], {}, stdout=subprocess.PIPE, text=True)
grandchild = int(child.stdout.readline())
polite = sup.start("polite", [sys.executable, "-c", "import signal; signal.pause()"], {})  # waits for a signal
before = descendants(__import__("os").getpid())
print(json.dumps({"pids": [child.pid, grandchild, polite.pid], "before": before, "subreaper": sup.subreaper}), flush=True)
sup.stop()
print(json.dumps({"codes": [child.returncode, polite.returncode]}), flush=True)
"""


def test_stop_leaves_no_child_nor_grandchild_behind():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    first, second = (json.loads(line) for line in done.stdout.splitlines()[:2])
    pids = first["pids"]
    assert set(pids) <= set(first["before"])
    assert first["subreaper"]
    assert second["codes"][0] == -9 and second["codes"][1] == -15  # SIGKILL after the timeout; SIGTERM
    assert not [p for p in pids if process_alive(p)], pids
    assert all(process_start_time(p) is None or not process_alive(p) for p in pids)
