"""Background processes with pid files: start detached, find alive, stop with no process left behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from services.errors import XmodalError


class StackError(XmodalError):
    """A local service could not be installed or started; the message says what to look at."""


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); read its state so a crashed child is not taken for alive.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def read_pid(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def spawn(argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, log_file: Path, pid_file: Path) -> int:
    """Start ``argv`` in its own session (so it outlives us and its whole group can be stopped)."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        proc = subprocess.Popen(
            list(argv), cwd=cwd, env=dict(env), stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
    pid_file.write_text(f"{proc.pid}\n")
    return proc.pid


def stop(pid_file: Path, *, timeout_s: float = 30.0) -> bool:
    """SIGTERM the process group, then SIGKILL after ``timeout_s``. Returns whether something was running."""
    pid = read_pid(pid_file)
    pid_file.unlink(missing_ok=True)
    if pid is None:
        return False
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.1)
    _signal_group(pid, signal.SIGKILL)
    while pid_alive(pid):
        time.sleep(0.05)
    return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def wait_until(
    ready: Callable[[], bool], *, what: str, timeout_s: float, pid: int, log_file: Path
) -> None:
    """Poll ``ready`` until true; fail early with the log's tail when the process dies."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready():
            return
        if not pid_alive(pid):
            raise StackError(f"{what} exited during start-up. Last log lines ({log_file}):\n{tail(log_file)}")
        time.sleep(0.25)
    raise StackError(f"{what} not ready after {timeout_s:.0f}s. Last log lines ({log_file}):\n{tail(log_file)}")


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def run_with_progress(argv: Sequence[str], *, what: str, env: Mapping[str, str], log_file: Path) -> None:
    """Run a long install step, showing elapsed time on one line, keeping its output in a log."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with log_file.open("wb") as log:
        proc = subprocess.Popen(list(argv), env=dict(env), stdout=log, stderr=subprocess.STDOUT)
        tty = sys.stderr.isatty()
        last = -1
        while proc.poll() is None:
            elapsed = int(time.monotonic() - start)
            if tty:
                print(f"\r  {what} ... {elapsed}s", end="", file=sys.stderr, flush=True)
            elif elapsed // 15 != last:
                last = elapsed // 15
                print(f"  {what} ... {elapsed}s", file=sys.stderr, flush=True)
            time.sleep(0.5)
    took = time.monotonic() - start
    if tty:
        print(file=sys.stderr)
    if proc.returncode != 0:
        raise StackError(f"{what} failed (exit {proc.returncode}). Log {log_file}:\n{tail(log_file)}")
    print(f"  {what}: done in {took:.0f}s", file=sys.stderr, flush=True)
