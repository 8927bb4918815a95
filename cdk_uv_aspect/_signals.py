"""The children still running, and ending them: each command's process group, SIGINT and SIGTERM, and
the end of the CDK's node process.

Every child runs in a process group of its own (``_runner``), so that ending its group ends what it
started too (a build backend under ``uv build``). Inside ``interruptible()``, SIGINT and SIGTERM end every
child's group, no new command starts, the builds unwind (their ``finally`` blocks remove private folders),
and then the process stops as the signal asks. Inside ``while_node_runs()``, the end of the CDK's node
process does the same.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from types import FrameType
from typing import Any


class Interrupted(BaseException):
    """A signal is stopping this process: no new command starts. A BaseException, like KeyboardInterrupt,
    so that no ``except Exception`` turns it into a build error."""


RUNNING: set[subprocess.Popen[str]] = set()
RUNNING_LOCK = threading.Lock()
STOP = threading.Event()  # set by a signal inside interruptible(): no new command starts


def running() -> list[subprocess.Popen[str]]:
    """The children started here that are still running."""
    with RUNNING_LOCK:
        return list(RUNNING)


def end_group(child: subprocess.Popen[str], grace: float = 2.0) -> None:
    """End ``child``'s process group: SIGTERM, then SIGKILL for whatever is left after ``grace`` seconds."""
    end_groups([child], grace)


def end_groups(children: Sequence[subprocess.Popen[str]], grace: float) -> None:
    """End several process groups at once: SIGTERM to all, at most ``grace`` seconds, SIGKILL to all."""
    for child in children:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for child in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=max(deadline - time.monotonic(), 0))
    for child in children:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)  # what the child started may outlive it


def stop_all(grace: float = 1.0) -> int:
    """No new command starts; every running child's group ends. Returns how many were running."""
    STOP.set()
    children = running()
    end_groups(children, grace)
    return len(children)


_HANDLING = threading.Lock()
_depth = 0


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM end every child first, then stop this process.

    The handler ends every running child's process group (no new one starts), then raises in the main
    thread: ``KeyboardInterrupt`` for SIGINT, ``SystemExit(143)`` for SIGTERM (after calling a handler
    the program had installed). The block unwinds, so the builds' ``finally`` blocks remove their private
    folders, and the process exits as the signal asked (jsii's node process is stopped at exit). Signals
    can only be handled in the main thread: elsewhere, and for a signal the process ignores, nothing
    changes. Nested blocks share the outer one's handlers.
    """
    global _depth
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with _HANDLING:
        _depth += 1
        outer = _depth == 1
    previous: dict[int, Any] = {}
    if outer:
        for signum in (signal.SIGINT, signal.SIGTERM):
            before = signal.getsignal(signum)
            if before in (signal.SIG_IGN, None):
                continue
            previous[signum] = before
            signal.signal(signum, _handler(before))
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        with _HANDLING:
            _depth -= 1
        if outer:
            STOP.clear()


def _handler(before: Any) -> Callable[[int, FrameType | None], None]:
    def handle(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        started = time.monotonic()
        ended = stop_all()
        # os.write, not print: a print interrupted by this handler would refuse a second one.
        took = time.monotonic() - started
        os.write(2, f"cdk-uv-aspect: {name}: stopping; {ended} running command(s) ended in {took:.1f} s\n".encode())
        if callable(before) and before is not signal.default_int_handler:
            before(signum, frame)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)

    return handle


_POLL = 0.25  # seconds between two looks at whether the CDK's node process still runs


class NodeGone(SystemExit):
    """The CDK's node process (jsii's) ended while we built: nothing can finish the synth now."""


def jsii_node() -> subprocess.Popen[bytes] | None:
    """The CDK's node process, which jsii started for this Python process; None if there is none.

    jsii keeps it in ``jsii._runtime.kernel`` (not a public API): where a jsii release keeps it elsewhere,
    nothing is watched, and a synth whose node ended stops only when it next calls into it.
    """
    if "jsii" not in sys.modules:
        return None  # not a CDK app (cdk-uv build): no node to watch, and none to start here
    try:
        from jsii._runtime import kernel

        process = getattr(getattr(kernel.provider, "_process", None), "_process", None)
    except Exception:  # any other jsii: nothing to watch
        return None
    return process if isinstance(process, subprocess.Popen) else None


@contextlib.contextmanager
def while_node_runs(node: subprocess.Popen[bytes] | None) -> Iterator[None]:
    """While the block runs, the end of ``node`` (the CDK's node process) stops every command, as a
    signal does, and the block then ends with ``NodeGone``.

    A synth started as a background job of a script ignores SIGINT: Ctrl-C ends node (which takes the
    signal back) but not Python, which would build on for minutes for a synth that can no longer finish.
    A signal's own exception (``KeyboardInterrupt``, ``SystemExit``) goes on as it is.
    """
    if node is None:
        yield
        return
    done = threading.Event()
    gone: list[int] = []

    def watch() -> None:
        while not done.wait(_POLL):
            if node.poll() is not None:
                gone.append(node.pid)
                os.write(
                    2, f"cdk-uv-aspect: the CDK's node process (jsii, pid {node.pid}) is gone: stopping\n".encode()
                )
                stop_all()
                return

    watcher = threading.Thread(target=watch, name="cdk-uv-aspect: node watch", daemon=True)
    watcher.start()
    try:
        yield
    except (Exception, Interrupted):
        if not gone:
            raise
        # A build stopped because node ended: that is the cause.
    finally:
        done.set()
        watcher.join()
    if gone:
        # Its pipe leads nowhere now: closed, so that jsii's own clean-up at exit writes nothing into it.
        with contextlib.suppress(OSError, ValueError):
            if node.stdin is not None:
                node.stdin.close()
        raise NodeGone(f"cdk-uv-aspect: the synth stopped: the CDK's node process (pid {gone[0]}) ended")
