"""Invoke: call a function's handler with an event, started as Lambda starts it (``_start``), and read its answer."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from ._runner import Result, Runner
from ._sandbox import Sandbox
from ._start import INIT_SECONDS, REQUEST_LIMIT, LambdaFunction, interpreter, start


@dataclass(frozen=True)
class Invocation:
    ok: bool
    result: Any  # the handler's answer, or {"errorType", "errorMessage", "stackTrace"}
    seconds: float
    logs: str  # what the handler printed
    payload: str = ""  # the answer as Lambda sends it: JSON text, or the bytes a handler returned
    changed: tuple[str, ...] = ()  # files of the folders it started from that the run changed


def too_large(size: int) -> str:
    """Lambda's answer to a synchronous invocation whose event is larger than it takes ("" when it fits)."""
    if size <= REQUEST_LIMIT:
        return ""
    return (
        f"Request must be smaller than {REQUEST_LIMIT} bytes for the InvokeFunction operation (the event has "
        f"{size} bytes; Lambda's limit for a synchronous invocation's payload is 6 MB)"
    )


def invoke(
    fn: LambdaFunction, event: Any, *, command: list[str] | None = None, runner: Runner | None = None
) -> Invocation:
    """Call ``fn``'s handler with ``event``, as Lambda would, from a private copy of its code and layers.

    The handler sees only the function's environment and the variables Lambda sets itself
    (``_start.lambda_environment``), a home of its own, and a read-only copy of its code; it is stopped,
    as Lambda stops it, after its timeout (plus Lambda's 10 s for initialization). ``command`` runs the
    runtime's Python (default: ``_start.interpreter(fn)``, which raises ``CannotRunHere``).
    """
    text = json.dumps(event)
    refused = too_large(len(text.encode("utf-8")))
    if refused:
        return Invocation(False, {"errorType": "RequestTooLargeException", "errorMessage": refused}, 0.0, "")
    command = command or interpreter(fn)
    started = time.monotonic()
    with Sandbox(fn.code, fn.layers) as box:
        done = start(fn, box, command, mode="invoke", event=text, runner=runner)
        seconds = time.monotonic() - started
    answer = answer_of(done, seconds, fn.timeout)
    return Invocation(answer.ok, answer.result, answer.seconds, answer.logs, answer.payload, tuple(box.changed))


def answer_of(done: Result, seconds: float, timeout: float) -> Invocation:
    """What the bootstrap's run said: the handler's answer (after a NUL), its error, or why it gave none."""
    logs, sep, payload = done.stdout.rpartition("\0")
    stderr = done.stderr.replace("\0\n", "", 1)  # the bootstrap's mark before the init
    if done.timed_out:
        message = (
            f"Task timed out after {timeout:.2f} seconds (and {INIT_SECONDS} s for initialization): the "
            "handler was stopped, as Lambda stops it"
        )
        timed_out = {"errorType": "Sandbox.Timedout", "errorMessage": message}
        return Invocation(False, timed_out, seconds, done.stdout.replace("\0", "") + stderr)
    if not sep:
        message = stderr.strip() or f"the process exited {done.returncode} before the handler answered"
        return Invocation(False, {"errorType": "Runtime.ExitError", "errorMessage": message}, seconds, done.stdout)
    try:
        answer = json.loads(payload)
    except ValueError:
        answer = payload  # a handler that returned bytes: Lambda sends them as they are
    return Invocation(done.ok, answer, seconds, logs + stderr, payload)
