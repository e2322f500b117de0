"""File sources are confined: allowed roots and log job files only, real paths (no symlink
escape), regular files only (no FIFO, device or /proc), bounded in size and time."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from aiops.config import LogJob, Settings
from aiops.errors import DatasourceTimeout, InvalidInput
from aiops.sources.files import LogAccess, read_log_file

LINE = "2024-03-04T10:00:{:02d}Z INFO request {} served in 12ms\n"


def write_log(path: Path, n: int = 10) -> Path:
    path.write_text("".join(LINE.format(i % 60, i) for i in range(n)))
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "logs"
    r.mkdir()
    return r


def test_a_file_inside_a_root_is_read(root: Path) -> None:
    path = write_log(root / "app.log")
    loaded = LogAccess(roots=(root,)).read(str(path))
    assert len(loaded.frame) == 10 and not loaded.truncated and loaded.path == path.resolve()


@pytest.mark.parametrize(
    "target", ["/etc/passwd", "/proc/self/environ", "/dev/zero", "/proc/self/status"]
)
def test_files_outside_the_roots_are_refused_naming_the_roots(root: Path, target: str) -> None:
    with pytest.raises(InvalidInput, match="outside the allowed log roots") as err:
        LogAccess(roots=(root,)).check(target)
    assert str(root) in err.value.message and err.value.field == "path"


def test_pseudo_filesystems_are_refused_even_under_a_root() -> None:
    with pytest.raises(InvalidInput, match="outside the allowed"):
        LogAccess(roots=(Path("/"),)).check("/proc/self/environ")
    with pytest.raises(InvalidInput, match="outside the allowed"):
        LogAccess(roots=(Path("/"),)).check("/dev/zero")


def test_dot_dot_cannot_climb_out_of_a_root(root: Path, tmp_path: Path) -> None:
    write_log(tmp_path / "secret.log")
    with pytest.raises(InvalidInput, match="outside the allowed log roots"):
        LogAccess(roots=(root,)).check(str(root / ".." / "secret.log"))


def test_a_symlink_leading_out_of_a_root_is_refused(root: Path, tmp_path: Path) -> None:
    secret = write_log(tmp_path / "secret.log")
    (root / "innocent.log").symlink_to(secret)
    with pytest.raises(InvalidInput, match="symlink") as err:
        LogAccess(roots=(root,)).check(str(root / "innocent.log"))
    assert str(secret) in err.value.message


def test_a_symlink_within_the_root_is_fine(root: Path) -> None:
    write_log(root / "app.log.1")
    (root / "app.log").symlink_to(root / "app.log.1")
    assert LogAccess(roots=(root,)).check(str(root / "app.log")) == (root / "app.log.1").resolve()


def test_a_fifo_is_refused_without_blocking(root: Path) -> None:
    fifo = root / "pipe.log"
    os.mkfifo(fifo)
    with pytest.raises(InvalidInput, match="FIFO"):
        LogAccess(roots=(root,)).check(str(fifo))
    # the plain reader refuses it too, and opening never waits for a writer
    with pytest.raises(InvalidInput, match="FIFO"):
        read_log_file(fifo)


def test_a_directory_and_a_missing_file_are_named(root: Path) -> None:
    access = LogAccess(roots=(root,))
    with pytest.raises(InvalidInput, match="directory"):
        access.check(str(root))
    with pytest.raises(InvalidInput, match="not found"):
        access.check(str(root / "nope.log"))


def test_log_job_files_are_allowed_wherever_they_are(tmp_path: Path, root: Path) -> None:
    elsewhere = write_log(tmp_path / "job.log")
    settings = Settings(
        log_roots=str(root), log_jobs=[LogJob(name="web", path=str(elsewhere))], config_file=None
    )
    access = LogAccess.from_settings(settings)
    assert access.check(str(elsewhere)) == elsewhere.resolve()
    with pytest.raises(InvalidInput):
        access.check(str(tmp_path / "other.log"))


def test_the_default_root_is_the_data_dirs_logs_folder(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", config_file=None)
    assert settings.log_file_roots() == ((tmp_path / "data" / "logs").absolute(),)
    (tmp_path / "data" / "logs").mkdir(parents=True)
    inside = write_log(tmp_path / "data" / "logs" / "app.log")
    access = LogAccess.from_settings(settings)
    assert access.check(str(inside)) == inside.resolve()
    with pytest.raises(InvalidInput):
        access.check("/etc/passwd")


def test_log_roots_must_be_absolute() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="absolute"):
        Settings(log_roots="relative/logs", config_file=None)


def test_a_file_over_the_size_bound_is_read_from_its_tail_and_says_so(root: Path) -> None:
    path = write_log(root / "big.log", n=1000)
    size = path.stat().st_size
    loaded = LogAccess(roots=(root,), max_bytes=size // 10).read(str(path))
    assert loaded.truncated and "AIOPS_LOG_MAX_BYTES" in loaded.reason
    assert 0 < len(loaded.frame) <= 101
    assert loaded.frame["line"].iloc[-1].endswith("request 999 served in 12ms")
    assert all(line.startswith("2024-03-04T10:00:") for line in loaded.frame["line"])  # no cut line


def test_a_read_past_its_deadline_is_a_timeout(root: Path) -> None:
    path = write_log(root / "app.log")
    with pytest.raises(DatasourceTimeout, match="AIOPS_LOG_READ_TIMEOUT_SECONDS"):
        LogAccess(roots=(root,), timeout_seconds=1e-9).read(str(path))


def test_reading_a_fifo_never_hangs_even_with_a_writer_absent(root: Path) -> None:
    fifo = root / "p"
    os.mkfifo(fifo)
    done = threading.Event()
    errors: list[BaseException] = []

    def attempt() -> None:
        try:
            read_log_file(fifo)
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
            errors.append(exc)
        done.set()

    threading.Thread(target=attempt, daemon=True).start()
    assert done.wait(10), "open() of a FIFO blocked"
    assert isinstance(errors[0], InvalidInput)
