"""Runner: every subprocess (uv, the target's Python, a container engine) goes through here.

Commands are argument lists, never shell strings. Each child runs in a process group of its own, so that
a timeout or an interrupt ends it together with everything it started (a build backend under
``uv build``), and the groups still running are known (``running``) to whoever must end them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("cdk_uv_aspect")

_SHOWN_LINES = 40
NOT_FOUND = 127


@dataclass(frozen=True)
class Result:
    """What a command did: its exit status and output (``timed_out`` when it was stopped)."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    @property
    def not_found(self) -> bool:
        """The program could not be started (as a shell says: exit status 127)."""
        return self.returncode == NOT_FOUND

    def describe(self) -> str:
        """The command, its exit status and its output's last lines, for an error message."""
        shown = " ".join(self.args)
        status = "timed out" if self.timed_out else str(self.returncode)
        output = (self.stderr.strip() or self.stdout.strip()).splitlines()[-_SHOWN_LINES:]
        return f"  command:   {shown}\n  exit code: {status}\n" + "\n".join("  | " + line for line in output)


class Runner:
    """Runs a command and returns its result; tests replace it to reach errors a real tool can't."""

    def run(
        self,
        args: Sequence[str],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        input: str | None = None,
        timeout: float | None = None,
    ) -> Result:
        """Run ``args``; ``env`` adds to this process's environment; ``timeout`` in seconds ends it."""
        argv = tuple(str(a) for a in args)
        try:
            child = subprocess.Popen(
                argv,
                cwd=cwd,
                env={**os.environ, **(env or {})},
                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                errors="replace",
                start_new_session=True,
            )
        except OSError as exc:
            result = Result(argv, NOT_FOUND, "", f"{argv[0]}: {exc.strerror}")
        else:
            result = _wait(child, argv, input, timeout)
        log.debug("%s -> %s\n%s%s", " ".join(argv), result.returncode, result.stdout, result.stderr)
        return result


_RUNNING: set[subprocess.Popen[str]] = set()
_RUNNING_LOCK = threading.Lock()


def _wait(child: subprocess.Popen[str], argv: tuple[str, ...], input: str | None, timeout: float | None) -> Result:
    with _RUNNING_LOCK:
        _RUNNING.add(child)
    try:
        try:
            stdout, stderr = child.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            end_group(child)
            stdout, stderr = child.communicate()
            return Result(argv, child.returncode, stdout, stderr, timed_out=True)
        except BaseException:
            end_group(child)  # interrupted: the child and what it started go too
            raise
        return Result(argv, child.returncode, stdout, stderr)
    finally:
        with _RUNNING_LOCK:
            _RUNNING.discard(child)


def running() -> list[subprocess.Popen[str]]:
    """The children started here that are still running."""
    with _RUNNING_LOCK:
        return list(_RUNNING)


def end_group(child: subprocess.Popen[str], grace: float = 2.0) -> None:
    """End ``child``'s process group: SIGTERM, then SIGKILL for whatever is left after ``grace`` seconds."""
    try:
        os.killpg(child.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)  # what the child started may outlive it
