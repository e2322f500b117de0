"""The child processes of ``aiops up``: started, watched, and stopped with nothing left behind.

Each child runs in its own session (process group), so a Ctrl-C in the terminal reaches only
``aiops up``, which then stops the children itself, in reverse start order: SIGTERM to the
child's whole group, a bounded wait, SIGKILL to the group. Grandchildren that leave their
parent's group (Prefect starts each flow run in a new session) are caught too: on Linux
``aiops up`` is a child subreaper, so orphans are re-parented to it, and after the children
are stopped every remaining descendant is terminated and reaped.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiops.errors import AiopsError

__all__ = ["Supervisor", "descendants", "process_alive", "process_start_time"]

log = logging.getLogger(__name__)

_PR_SET_CHILD_SUBREAPER = 36


def _stat(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name (state is [0], ppid [1])."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return raw[raw.rfind(")") + 2 :].split()


def process_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (tells a pid from a re-used one)."""
    fields = _stat(pid)
    return int(fields[19]) if fields else None


def process_alive(pid: int, start_time: int | None = None) -> bool:
    """``pid`` exists, is not a zombie and (when given) started at ``start_time``."""
    fields = _stat(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return start_time is None or int(fields[19]) == start_time


def descendants(root: int) -> list[int]:
    """Every live descendant of ``root`` (children first), from ``/proc``."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields and fields[0] not in ("Z", "X"):
                children.setdefault(int(fields[1]), []).append(int(entry))
    out: list[int] = []
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop(0)
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _become_subreaper() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


@dataclass
class Child:
    name: str
    process: subprocess.Popen
    own_group: bool


class Supervisor:
    """Start children, notice when one dies, stop them all."""

    def __init__(self, stop_timeout: float = 20.0) -> None:
        self.children: list[Child] = []
        self.stop_timeout = stop_timeout
        self.subreaper = _become_subreaper()

    def start(self, name: str, cmd: Sequence[str], env: Mapping[str, str], **popen: Any) -> subprocess.Popen:
        """Start ``cmd`` in its own session; its output goes where ours does unless redirected."""
        proc = subprocess.Popen(list(cmd), env=dict(env), stdin=subprocess.DEVNULL, start_new_session=True, **popen)
        self.children.append(Child(name, proc, own_group=True))
        log.debug("started %s (pid %d)", name, proc.pid)
        return proc

    def adopt(self, name: str, proc: subprocess.Popen) -> None:
        """Watch and stop a child started elsewhere (not in its own group: signalled alone)."""
        self.children.append(Child(name, proc, own_group=False))

    def check(self) -> None:
        """Raise :class:`AiopsError` when a child has exited."""
        for child in self.children:
            code = child.process.poll()
            if code is not None:
                raise AiopsError(f"{child.name} exited with code {code}")

    def _signal(self, child: Child, sig: int) -> None:
        try:
            if child.own_group:
                os.killpg(child.process.pid, sig)
            else:
                child.process.send_signal(sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self) -> None:
        """Stop every child, newest first, then whatever descendants are left. Idempotent;
        SIGINT and SIGTERM are ignored meanwhile, so a second Ctrl-C cannot cut it short."""
        previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for child in reversed(self.children):
                if child.process.poll() is None:
                    log.info("stopping %s (pid %d)", child.name, child.process.pid)
                self._signal(child, signal.SIGTERM)  # the group may outlive its leader
                try:
                    child.process.wait(timeout=self.stop_timeout)
                except subprocess.TimeoutExpired:
                    log.warning("%s did not stop within %.0fs: killing it", child.name, self.stop_timeout)
                    self._signal(child, signal.SIGKILL)
                    child.process.wait(timeout=10)
                if child.own_group:
                    self._signal(child, signal.SIGKILL)  # stragglers of its group
            self._sweep()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _sweep(self) -> None:
        """Terminate and reap descendants that outlived their parents (re-parented to us)."""
        left = {pid: process_start_time(pid) for pid in descendants(os.getpid())}
        if left:
            log.warning("stopping %d leftover processes: %s", len(left), sorted(left))
            for pid in left:
                _kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and any(process_alive(p, t) for p, t in left.items()):
                self._reap()
                time.sleep(0.1)
            for pid, started in left.items():
                if process_alive(pid, started):
                    _kill(pid, signal.SIGKILL)
        self._reap()

    def _reap(self) -> None:
        """Collect exit statuses of re-parented orphans (our Popen children are already waited)."""
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
