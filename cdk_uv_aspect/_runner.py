"""Runner: every subprocess (uv, the target's Python, a container engine) goes through here.

Commands are argument lists, never shell strings. Each child runs in a process group of its own, so that
a timeout or an interrupt ends it together with everything it started (a build backend under
``uv build``), and the groups still running are known (``_signals.running``) to whoever must end them.

Three limits hold for every command:

- **Time.** Each command is stopped after its timeout (default ``$CDK_UV_COMMAND_TIMEOUT``, else
  1800 s; a build passes ``UvOptions.command_timeout``), and a slow one is reported while
  it runs (``on_slow``), so nothing waits forever or in silence.
- **Cores.** At most as many commands run at once in this process as it has cores (``SLOTS``), however
  many builds and local wheels run side by side.
- **Signals.** Inside ``_signals.interruptible()``, SIGINT and SIGTERM end every child's process group, let the
  builds unwind (their ``finally`` blocks remove private folders) and then stop the process as the
  signal asks; no new command starts once a signal came.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._env import DEFAULT_COMMAND_TIMEOUT, env_seconds
from ._signals import RUNNING, RUNNING_LOCK, STOP, Interrupted, end_group

log = logging.getLogger("cdk_uv_aspect")

NOT_FOUND = 127
TIMEOUT_VARIABLE = "CDK_UV_COMMAND_TIMEOUT"

_TAIL_LINES = 40  # the last lines of a failed command's output, always shown
_CAUSE_LINES = 40  # at most this many earlier lines that name the cause, kept although above the tail
_STDOUT_LINES = 20
# Lines that name a failure's cause in uv's output (uv 0.13: "error:", "  cause:", "hint:"; older uv and
# other tools: "Caused by:", and miette's "x" and arrow marks), and Python's last traceback line
# ("RuntimeError: ...").
_CAUSE = re.compile(
    "|".join(
        [
            r"^\s*(?:error|cause|caused by|hint|help|fatal)\b:",
            "^\\s*[\u00d7\u2570\u251c]",  # miette: "\u00d7 No solution found", "\u2570\u2500\u25b6 Because ..."
            r"^[A-Za-z_.]*(?:Error|Exception): ",
        ]
    ),
    re.IGNORECASE,
)
_FIRST_NOTICE = 30.0  # seconds before a still-running command is first reported, then at doubling intervals


@dataclass(frozen=True)
class Result:
    """What a command did: its exit status and output (``timed_out`` when it was stopped)."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False
    timeout: float | None = None  # the limit it was given, in seconds

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    @property
    def not_found(self) -> bool:
        """The program could not be started (as a shell says: exit status 127)."""
        return self.returncode == NOT_FOUND

    @property
    def command(self) -> str:
        """The command in a few words: ``uv pip install``, ``python3.12 -s``, ``docker run``."""
        words = [Path(self.args[0]).name] if self.args else []
        for arg in self.args[1:3]:
            if arg.startswith("-") or "/" in arg:
                break
            words.append(arg)
        return " ".join(words)

    def describe(self) -> str:
        """The command, its exit status, and the lines of its output that say why it failed.

        Every line that names a cause (``error:``, ``cause:``, ``hint:``...) is kept wherever it is, with
        the last lines of the output: a long list (a hash mismatch's expected hashes) can't push the
        cause out of the message.
        """
        shown = " ".join(self.args)
        if self.timed_out:
            status = f"none: stopped after {self.timeout:g} s (timed out)" if self.timeout else "timed out"
        else:
            status = str(self.returncode)
        lines = [f"  command:   {shown}", f"  exit code: {status}", self.quoted()]
        out = self.stdout.strip()
        if self.stderr.strip() and out:
            lines.append("  stdout:")
            lines += ["  | " + line for line in _tail(out.splitlines(), _STDOUT_LINES)]
        return "\n".join(lines)

    def quoted(self) -> str:
        """The lines of its error output (else of its output) that say why it failed, quoted."""
        return "\n".join("  | " + line for line in kept_lines(self.stderr.strip() or self.stdout.strip()))


def kept_lines(text: str) -> list[str]:
    """``text``'s lines that name a cause, then its last lines; what is left out is said, not hidden."""
    lines = text.splitlines()
    if len(lines) <= _TAIL_LINES:
        return lines
    head = len(lines) - _TAIL_LINES
    causes = [i for i in range(head) if _CAUSE.search(lines[i])][:_CAUSE_LINES]
    shown: list[str] = []
    last = -1
    for i in [*causes, *range(head, len(lines))]:
        if i > last + 1:
            shown.append(f"[... {i - last - 1} lines left out ...]")
        shown.append(lines[i])
        last = i
    return shown


def _tail(lines: list[str], n: int) -> list[str]:
    return lines if len(lines) <= n else [f"[... {len(lines) - n} lines left out ...]", *lines[-n:]]


def cores() -> int:
    """The cores this process may run on (its CPU affinity, as a container or `taskset` limits it)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


SLOTS = threading.BoundedSemaphore(cores())
"""One per core: a command runs only while it holds one (see the module's docstring)."""


def default_timeout() -> float:
    """``$CDK_UV_COMMAND_TIMEOUT`` (seconds), else 1800 (``UvOptions.command_timeout``'s default)."""
    return env_seconds(TIMEOUT_VARIABLE, DEFAULT_COMMAND_TIMEOUT)


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
        inherit_env: bool = True,
        on_slow: Callable[[float], None] | None = None,
    ) -> Result:
        """Run ``args``, stopped after ``timeout`` seconds (default: ``default_timeout()``).

        ``env`` adds to this process's environment; with ``inherit_env=False`` it is the child's whole
        environment. ``on_slow(seconds)`` is called while the command still runs, after 30 s, 60 s, 120 s...
        """
        argv = tuple(str(a) for a in args)
        limit = default_timeout() if timeout is None else timeout
        environment = {**os.environ, **(env or {})} if inherit_env else dict(env or {})
        with SLOTS:
            if STOP.is_set():
                raise Interrupted
            try:
                child = subprocess.Popen(
                    argv,
                    cwd=cwd,
                    env=environment,
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
                result = _wait(child, argv, input, limit, on_slow)
        log.debug("%s -> %s\n%s%s", " ".join(argv), result.returncode, result.stdout, result.stderr)
        return result


class Bounded(Runner):
    """Another runner's commands, each stopped after ``timeout`` seconds, and reported by ``say`` while slow.

    ``what`` names whom the commands are for in that report (a package and its target).
    """

    def __init__(self, inner: Runner, timeout: float, *, what: str = "", say: Callable[[str], None] | None = None):
        self.inner, self.timeout, self.what, self.say = inner, timeout, what, say

    def run(self, args: Sequence[str], *, timeout: float | None = None, **kwargs: Any) -> Result:
        limit = self.timeout if timeout is None else min(timeout, self.timeout)
        if self.say is not None and kwargs.get("on_slow") is None:
            kwargs["on_slow"] = self._notice(args, limit)
        return self.inner.run(args, timeout=limit, **kwargs)

    def _notice(self, args: Sequence[str], limit: float) -> Callable[[float], None]:
        command = Result(tuple(map(str, args)), 0, "", "").command
        who = f" for {self.what}" if self.what else ""
        say = self.say
        assert say is not None
        return lambda seconds: say(
            f"cdk-uv-aspect: `{command}`{who} still running after {seconds:.0f} s; it is stopped after "
            f"{limit:g} s (UvOptions.command_timeout, ${TIMEOUT_VARIABLE})"
        )


def _wait(
    child: subprocess.Popen[str],
    argv: tuple[str, ...],
    input: str | None,
    timeout: float,
    on_slow: Callable[[float], None] | None,
) -> Result:
    with RUNNING_LOCK:
        RUNNING.add(child)
    if STOP.is_set():  # a signal came between the check before starting and now: it ends too
        end_group(child, grace=0)
    started = time.monotonic()
    notice = _FIRST_NOTICE
    try:
        while True:
            elapsed = time.monotonic() - started
            wait = min(timeout, notice) - elapsed if on_slow else timeout - elapsed
            try:
                # communicate() may be called again after a timeout without losing output; input only once.
                stdout, stderr = child.communicate(input, timeout=max(wait, 0))
                return Result(argv, child.returncode, stdout, stderr)
            except subprocess.TimeoutExpired:
                input = None
            elapsed = time.monotonic() - started
            if elapsed >= timeout:
                end_group(child)
                stdout, stderr = child.communicate()
                return Result(argv, child.returncode, stdout, stderr, timed_out=True, timeout=timeout)
            if on_slow is not None and elapsed >= notice:
                on_slow(elapsed)
                notice *= 2
    except BaseException:
        end_group(child)  # interrupted: the child and what it started go too
        raise
    finally:
        with RUNNING_LOCK:
            RUNNING.discard(child)
