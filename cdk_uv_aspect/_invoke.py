"""Invoke: run a handler from its asset folder alone, with the runtime's Python, as Lambda would."""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._lambda import HOST_MACHINES
from ._runner import Runner

# The handler's answer as the Lambda Python runtime marshals it (its marshaller is simplejson with
# use_decimal=False and allow_nan=True, and ensure_ascii=False from python3.12 on; awslambdaric's
# lambda_runtime_marshaller.py): bytes as UTF-8 text, Decimal as a number (NaN for a NaN), namedtuples
# as objects, tuples as arrays, NaN and Infinity as such, non-ASCII text escaped before python3.12;
# anything else (a set, a datetime) is a Runtime.MarshalError. An answer that is bytes is the payload.
_MARSHAL = r"""
import decimal, json, math, sys

_ASCII = sys.version_info < (3, 12)
_LITERALS = {None: "null", True: "true", False: "false"}


def _number(value):
    if value != value:
        return "NaN"
    if value in (math.inf, -math.inf):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)


def _key(key):
    if isinstance(key, bytes):
        return key.decode("utf-8")
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool):
        return _LITERALS[key]
    if isinstance(key, float):
        return _number(key)
    if isinstance(key, int):
        return int.__repr__(key)
    raise TypeError("keys must be str, int, float, bool or None, not " + type(key).__name__)


def _text(value):
    return json.dumps(value, ensure_ascii=_ASCII)


def _encode(value, parents):
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, str):
        return _text(value)
    if value is None or isinstance(value, bool):
        return _LITERALS[value]
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        return _number(value)
    if id(value) in parents:
        raise ValueError("Circular reference detected")
    inner = parents | {id(value)}
    as_dict = getattr(value, "_asdict", None)
    if not isinstance(value, list) and callable(as_dict):
        value = as_dict()  # a namedtuple: an object
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_encode(item, inner) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(_text(_key(k)) + ": " + _encode(v, inner) for k, v in value.items()) + "}"
    if isinstance(value, decimal.Decimal):
        return "NaN" if value.is_nan() else str(value)
    raise TypeError("Object of type " + type(value).__name__ + " is not JSON serializable")


def respond(result):
    try:
        payload = result if isinstance(result, bytes) else _encode(result, frozenset()).encode("utf-8")
    except Exception as exc:
        error = {"errorType": "Runtime.MarshalError", "errorMessage": "Unable to marshal response: " + str(exc),
                 "stackTrace": []}
        sys.stdout.write("\0" + json.dumps(error))
        sys.exit(1)
    sys.stdout.flush()
    sys.stdout.buffer.write(b"\0" + payload)
"""

# Runs inside the runtime's interpreter with -I -S: no site-packages, no user site, no environment, so
# only the asset folder and the standard library can be imported.
_BOOTSTRAP = (
    _MARSHAL
    + r"""
import importlib, json, sys, time, traceback, uuid
task_root, handler, name, memory, arch, timeout = sys.argv[1:7]
sys.path.insert(0, task_root)

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
respond(result)
"""
)


@dataclass(frozen=True)
class Invocation:
    ok: bool
    result: Any  # the handler's answer, or {"errorType", "errorMessage", "stackTrace"}
    seconds: float
    logs: str  # what the handler printed
    payload: str = ""  # the answer as Lambda sends it: JSON text, or the bytes a handler returned


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
) -> Invocation:
    """Call ``handler`` (``module.function``) from ``asset_dir`` with the interpreter ``python``.

    The handler sees the function's ``environment`` and the variables Lambda sets itself; ``timeout``
    only feeds ``context.get_remaining_time_in_millis()``, nothing is stopped.
    """
    host = HOST_MACHINES.get(platform.machine().lower(), platform.machine())
    if architecture != host and any(asset_dir.rglob("*.so")):
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
    args.append(str(timeout))
    done = (runner or Runner()).run(args, cwd=asset_dir, env=env, input=json.dumps(event))
    seconds = time.monotonic() - started
    logs, sep, payload = done.stdout.rpartition("\0")
    if not sep:
        return Invocation(
            False, {"errorType": "Runtime.ExitError", "errorMessage": done.stderr.strip()}, seconds, done.stdout
        )
    try:
        answer = json.loads(payload)
    except ValueError:
        answer = payload  # a handler that returned bytes: Lambda sends them as they are
    return Invocation(done.ok, answer, seconds, logs + done.stderr, payload)
