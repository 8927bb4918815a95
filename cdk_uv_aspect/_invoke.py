"""Invoke: run a handler from its asset folder alone, with the runtime's Python, as Lambda would."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._lambda import HOST_MACHINES
from ._runner import Runner

# Runs inside the runtime's interpreter with -I -S: no site-packages, no user site, no environment, so
# only the asset folder and the standard library can be imported.
_BOOTSTRAP = r"""
import importlib, json, sys, time, traceback, uuid
task_root, handler, name, memory, arch, timeout = sys.argv[1:7]
# Lambda's order: the function's code, then each layer's python/ folder (/opt/python), if any are given.
sys.path[0:0] = [task_root, *json.loads(sys.argv[7] if len(sys.argv) > 7 else "[]")]

# The attributes of the Python runtime's LambdaContext; memory_limit_in_mb is a string there too.
class Context:
    function_name = name
    function_version = "$LATEST"
    invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
    memory_limit_in_mb = memory
    aws_request_id = str(uuid.uuid4())
    log_group_name = f"/aws/lambda/{name}"
    log_stream_name = "local"
    identity = None
    client_context = None
    def __init__(self):
        self._deadline = time.monotonic() + int(timeout)
    def get_remaining_time_in_millis(self):
        return int(max(self._deadline - time.monotonic(), 0) * 1000)

module_name, _, function_name = handler.rpartition(".")
event = json.loads(sys.stdin.read() or "{}")
try:
    fn = getattr(importlib.import_module(module_name), function_name)
    result = fn(event, Context())
except Exception as exc:
    sys.stdout.write("\0" + json.dumps({"errorType": type(exc).__name__, "errorMessage": str(exc),
                                        "stackTrace": traceback.format_exc()}))
    sys.exit(1)
sys.stdout.write("\0" + json.dumps(result, default=str))
"""


@dataclass(frozen=True)
class Invocation:
    ok: bool
    result: Any  # the handler's answer, or {"errorType", "errorMessage", "stackTrace"}
    seconds: float
    logs: str  # what the handler printed


class CannotRunHere(Exception):
    """The asset can't run on this machine (another architecture's native code, or no interpreter)."""


def invoke(
    asset_dir: Path,
    handler: str,
    python: str,
    event: Any,
    *,
    architecture: str = "x86_64",
    name: str = "function",
    memory: int = 128,
    timeout: int = 900,
    environment: dict[str, str] | None = None,
    runtime: str = "",
    runner: Runner | None = None,
    layers: Sequence[Path] = (),
) -> Invocation:
    """Call ``handler`` (``module.function``) from ``asset_dir`` with the interpreter ``python``.

    The handler sees the function's ``environment`` and the variables Lambda sets itself; ``timeout``
    only feeds ``context.get_remaining_time_in_millis()``, nothing is stopped. ``layers``: the ``python/``
    folders of the function's layers (what Lambda puts at ``/opt/python``), searched after ``asset_dir``.
    """
    host = HOST_MACHINES.get(platform.machine().lower(), platform.machine())
    if architecture != host and any(any(folder.rglob("*.so")) for folder in (asset_dir, *layers)):
        raise CannotRunHere(f"its native code is for {architecture} and this machine is {host}")
    started = time.monotonic()
    env = {
        **(environment or {}),
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory),
        "LAMBDA_TASK_ROOT": str(asset_dir),
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{runtime}" if runtime else "AWS_Lambda_python",
    }
    args = [python, "-I", "-S", "-c", _BOOTSTRAP, str(asset_dir), handler, name, str(memory), architecture]
    args += [str(timeout), json.dumps([str(folder) for folder in layers])]
    done = (runner or Runner()).run(args, cwd=asset_dir, env=env, input=json.dumps(event))
    seconds = time.monotonic() - started
    logs, sep, payload = done.stdout.rpartition("\0")
    if not sep:
        return Invocation(
            False, {"errorType": "Runtime.ExitError", "errorMessage": done.stderr.strip()}, seconds, done.stdout
        )
    return Invocation(done.ok, json.loads(payload), seconds, logs + done.stderr)
