"""The child processes of ``aiops up``: started, watched, and stopped with nothing left behind.

Each child runs in its own session (process group), so a Ctrl-C in the terminal reaches only
``aiops up``, which then stops the children itself, in reverse start order: SIGTERM to the
child's whole group, a bounded wait, SIGKILL to the group. Grandchildren that leave their
parent's group (Prefect starts each flow run in a new session) are caught too: on Linux
``aiops up`` is a child subreaper, so orphans are re-parented to it, and after the children
are stopped every remaining descendant is terminated and reaped.

A child that exits on its own is restarted after a backoff (:class:`RestartPolicy`: 1 s, 2 s,
4 s, ... up to a minute), each exit and restart logged with the child's name, its exit code and
when the next attempt is due, so one crashed datasource (the demo's Prometheus) does not take
the API and the Prefect server down with it. Only when a child keeps failing (``max_failures``
exits within ``window`` seconds) does :meth:`Supervisor.watch` raise, and the caller stops
everything.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiops.errors import AiopsError

if TYPE_CHECKING:
    from aiops.config import Settings

__all__ = [
    "Supervisor",
    "RestartPolicy",
    "descendants",
    "process_alive",
    "process_start_time",
    "prefect_home",
    "use_local_prefect",
]

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


@dataclass(frozen=True)
class RestartPolicy:
    """When to restart a child that exited, and when to give up.

    The n-th exit within ``window`` seconds is followed by a restart after
    ``min(initial * factor ** (n - 1), max_delay)`` seconds; the ``max_failures``-th gives up.
    Exits older than ``window`` are forgotten, so a child that ran for a while starts again at
    ``initial``."""

    initial: float = 1.0
    factor: float = 2.0
    max_delay: float = 60.0
    max_failures: int = 5
    window: float = 300.0

    def delay(self, failures: int) -> float:
        return min(self.initial * self.factor ** max(failures - 1, 0), self.max_delay)


Restart = Callable[[], subprocess.Popen]


@dataclass
class Child:
    name: str
    process: subprocess.Popen
    own_group: bool
    restart: Restart | None = None
    failures: list[float] = field(default_factory=list)  # clock times of recent exits
    restart_at: float | None = None  # set while waiting to restart
    restarts: int = 0


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"code {code} ({signal.Signals(-code).name})"
        except ValueError:
            pass
    return f"code {code}"


class Supervisor:
    """Start children, restart the ones that exit (with backoff), stop them all."""

    def __init__(
        self,
        stop_timeout: float = 20.0,
        *,
        policy: RestartPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.children: list[Child] = []
        self.stop_timeout = stop_timeout
        self.policy = policy or RestartPolicy()
        self.clock = clock
        self.subreaper = _become_subreaper()

    def start(
        self,
        name: str,
        cmd: Sequence[str],
        env: Mapping[str, str],
        *,
        restart: bool = True,
        **popen: Any,
    ) -> subprocess.Popen:
        """Start ``cmd`` in its own session; its output goes where ours does unless redirected.
        When it exits it is started again the same way (unless ``restart=False``)."""
        command, environment = list(cmd), dict(env)

        def spawn() -> subprocess.Popen:
            return subprocess.Popen(
                command, env=environment, stdin=subprocess.DEVNULL, start_new_session=True, **popen
            )

        proc = spawn()
        self.children.append(Child(name, proc, own_group=True, restart=spawn if restart else None))
        log.debug("started %s (pid %d)", name, proc.pid)
        return proc

    def adopt(self, name: str, proc: subprocess.Popen, *, restart: Restart | None = None) -> None:
        """Watch and stop a child started elsewhere (not in its own group: signalled alone);
        ``restart`` starts it again after it exited (without it, its exit stops everything)."""
        self.children.append(Child(name, proc, own_group=False, restart=restart))

    def watch(self) -> None:
        """Notice exited children and restart the due ones; call it every second or so.

        Raises :class:`AiopsError` when a child keeps failing (or cannot be restarted): the
        caller then stops everything."""
        now = self.clock()
        for child in self.children:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    self._restart(child, now)
                continue
            code = child.process.poll()
            if code is not None:
                self._exited(child, code, now)

    check = watch  # the name it had when any exit stopped everything

    def _exited(self, child: Child, code: int, now: float) -> None:
        policy = self.policy
        child.failures = [t for t in child.failures if now - t < policy.window] + [now]
        failures = len(child.failures)
        how = describe_exit(code)
        if child.restart is None:
            log.error(
                "%s (pid %d) exited with %s and cannot be restarted: stopping everything",
                child.name,
                child.process.pid,
                how,
            )
            raise AiopsError(f"{child.name} exited with {how}")
        if failures >= policy.max_failures:
            log.error(
                "%s (pid %d) exited with %s, its %d%s exit within %.0fs: it keeps failing, "
                "stopping everything",
                child.name,
                child.process.pid,
                how,
                failures,
                _ordinal(failures),
                policy.window,
            )
            raise AiopsError(
                f"{child.name} keeps failing: {failures} exits within {policy.window:.0f}s (last "
                f"with {how})"
            )
        delay = policy.delay(failures)
        child.restart_at = now + delay
        log.warning(
            "%s (pid %d) exited with %s: restarting it in %.0fs (exit %d within %.0fs; "
            "stopping everything at %d)",
            child.name,
            child.process.pid,
            how,
            delay,
            failures,
            policy.window,
            policy.max_failures,
        )
        self._reap_orphans()

    def _restart(self, child: Child, now: float) -> None:
        assert child.restart is not None
        child.restart_at = None
        try:
            child.process = child.restart()
        except (OSError, AiopsError) as exc:
            log.warning("%s could not be restarted: %s", child.name, exc)
            self._exited(child, 127, now)  # counts as a failure; the next attempt is scheduled
            return
        child.restarts += 1
        log.warning("restarted %s (pid %d)", child.name, child.process.pid)

    def _reap_orphans(self) -> None:
        """Reap zombies re-parented to us (orphans of a child that died), never our Popen children
        (their exit codes are theirs to read)."""
        ours = {c.process.pid for c in self.children}
        me = os.getpid()
        for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
            if entry.isdigit() and int(entry) not in ours:
                fields = _stat(int(entry))
                if fields and fields[0] == "Z" and int(fields[1]) == me:
                    try:
                        os.waitpid(int(entry), os.WNOHANG)
                    except ChildProcessError:
                        pass

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
        previous = {
            sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            for child in reversed(self.children):
                if child.process.poll() is None:
                    log.info("stopping %s (pid %d)", child.name, child.process.pid)
                self._signal(child, signal.SIGTERM)  # the group may outlive its leader
                try:
                    child.process.wait(timeout=self.stop_timeout)
                except subprocess.TimeoutExpired:
                    log.warning(
                        "%s did not stop within %.0fs: killing it", child.name, self.stop_timeout
                    )
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


def _ordinal(n: int) -> str:
    return "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def prefect_home(settings: Settings) -> str:
    """Where the local Prefect server of ``aiops up`` keeps its SQLite database: under the data
    dir."""
    home = (settings.data_dir / "prefect").resolve()
    home.mkdir(parents=True, exist_ok=True)
    return str(home)


def use_local_prefect(settings: Settings) -> None:
    """Run flows from this process against the local Prefect server (``aiops up``) when it
    is up and PREFECT_API_URL is unset, so the run shows in the UI; otherwise Prefect starts
    a temporary server whose history lands in the same data directory."""
    import httpx

    if os.environ.get("PREFECT_API_URL"):
        return
    url = f"http://127.0.0.1:{settings.prefect_port}/api"
    try:
        if httpx.get(url + "/health", timeout=1.0).status_code == 200:
            os.environ["PREFECT_API_URL"] = url
            log.info("flows run against the local Prefect server at %s", url)
            return
    except httpx.TransportError:
        pass
    os.environ.setdefault("PREFECT_HOME", prefect_home(settings))
