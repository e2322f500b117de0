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
    "g = subprocess.Popen([sys.executable, '-c', 'import signal; signal.pause()'],"
    " start_new_session=True)\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print(g.pid, flush=True)\n"
    "while True: signal.pause()\n"
)
child = sup.start("stubborn", [sys.executable, "-c", code], {}, stdout=subprocess.PIPE, text=True)
grandchild = int(child.stdout.readline())
# waits for a signal
polite = sup.start("polite", [sys.executable, "-c", "import signal; signal.pause()"], {})
before = descendants(__import__("os").getpid())
print(
    json.dumps(
        {"pids": [child.pid, grandchild, polite.pid], "before": before, "subreaper": sup.subreaper}
    ),
    flush=True,
)
sup.stop()
print(json.dumps({"codes": [child.returncode, polite.returncode]}), flush=True)
"""


def test_stop_leaves_no_child_nor_grandchild_behind():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    first, second = (json.loads(line) for line in done.stdout.splitlines()[:2])
    pids = first["pids"]
    assert set(pids) <= set(first["before"])
    assert first["subreaper"]
    assert (
        second["codes"][0] == -9 and second["codes"][1] == -15
    )  # SIGKILL after the timeout; SIGTERM
    assert not [p for p in pids if process_alive(p)], pids
    assert all(process_start_time(p) is None or not process_alive(p) for p in pids)


# --------------------------------------------------------------------------- restarts

RESTART_SCRIPT = r"""
import json, logging, os, signal, sys
from aiops.errors import AiopsError
from aiops.supervisor import RestartPolicy, Supervisor
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
now = [0.0]  # the supervisor's clock: the test moves it, nothing sleeps
sup = Supervisor(
    stop_timeout=5,
    clock=lambda: now[0],
    policy=RestartPolicy(initial=1, factor=2, max_delay=60, max_failures=3, window=100),
)
wait = [sys.executable, "-c", "import signal; signal.pause()"]  # stand-ins that wait for a signal
api = sup.start("api", wait, {})
sup.start("datasource", wait, {})
out = {"api": api.pid, "pids": [], "delays": [], "api_alive": []}

def crash(at):
    proc = sup.children[1].process
    out["pids"].append(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)  # the exit has happened before the supervisor looks
    now[0] = at
    sup.watch()
    out["delays"].append(sup.children[1].restart_at - at)
    out["api_alive"].append(api.poll() is None)

def restart_when_due(at):
    pid = sup.children[1].process.pid
    now[0] = at - 0.5
    sup.watch()
    assert sup.children[1].process.pid == pid, "restarted before its backoff was over"
    now[0] = at
    sup.watch()
    assert sup.children[1].process.pid != pid and sup.children[1].process.poll() is None

crash(0); restart_when_due(1)            # 1st exit: 1 s
crash(10); restart_when_due(12)          # 2nd within the window: 2 s
crash(200); restart_when_due(201)        # the first two are older than the window: 1 s again
crash(205); restart_when_due(207)
out["restarts"] = sup.children[1].restarts
proc = sup.children[1].process
out["pids"].append(proc.pid)
os.kill(proc.pid, signal.SIGKILL); proc.wait(timeout=30)
now[0] = 208
try:
    sup.watch()
    out["gave_up"] = None
except AiopsError as exc:  # 3 exits within 100 s: it keeps failing
    out["gave_up"] = str(exc)
out["api_alive_at_give_up"] = api.poll() is None
sup.stop()
print(json.dumps(out), flush=True)
"""


def test_a_crashed_child_is_restarted_with_backoff_while_the_others_keep_running():
    done = subprocess.run(
        [sys.executable, "-c", RESTART_SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["delays"] == [1, 2, 1, 2]
    assert all(out["api_alive"]) and out["api_alive_at_give_up"]
    assert out["restarts"] == 4 and len(set(out["pids"])) == 5
    assert (
        out["gave_up"]
        == "datasource keeps failing: 3 exits within 100s (last with code -9 (SIGKILL))"
    )
    log = done.stderr
    first = out["pids"][0]
    assert (
        f"WARNING datasource (pid {first}) exited with code -9 (SIGKILL): restarting it in 1s "
        "(exit 1 within 100s; stopping everything at 3)"
    ) in log
    assert f"WARNING restarted datasource (pid {out['pids'][1]})" in log
    assert "ERROR datasource" in log and "keeps failing, stopping everything" in log
    assert not [p for p in [out["api"], *out["pids"]] if process_alive(p)]


ADOPTED_SCRIPT = r"""
import json, os, signal, subprocess, sys
from aiops.errors import AiopsError
from aiops.supervisor import Supervisor
sup = Supervisor(stop_timeout=5, clock=lambda: 0.0)
wait = [sys.executable, "-c", "import signal; signal.pause()"]
proc = subprocess.Popen(wait)
sup.adopt("fixed", proc)  # no way to restart it: its exit stops everything, as before
os.kill(proc.pid, signal.SIGTERM); proc.wait(timeout=30)
try:
    sup.watch()
    print(json.dumps({"error": None}))
except AiopsError as exc:
    print(json.dumps({"error": str(exc)}))
sup.stop()
"""


def test_an_adopted_child_without_a_restart_stops_everything_when_it_exits():
    done = subprocess.run(
        [sys.executable, "-c", ADOPTED_SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == {
        "error": "fixed exited with code -15 (SIGTERM)"
    }
