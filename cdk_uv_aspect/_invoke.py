"""Invoke: run a handler from its asset folder alone, with the runtime's Python, as Lambda would."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._lambda import HOST_MACHINES
from ._runner import Result, Runner

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

# Runs inside the runtime's interpreter with -I -S -B: no site-packages, no user site, no PYTHON*
# variables, so only the asset folder and the standard library can be imported; and no bytecode written,
# so the asset folder (in the cloud assembly) is left as it was: Lambda's /var/task is read-only too.
_BOOTSTRAP = (
    _MARSHAL
    + r"""
import importlib, json, sys, time, traceback, uuid
task_root, handler, name, memory, arch, timeout, region = sys.argv[1:8]
# Lambda's order: the function's code, then each layer's python/ folder (/opt/python), if any are given.
sys.path[0:0] = [task_root, *json.loads(sys.argv[8] if len(sys.argv) > 8 else "[]")]

# The attributes of the Python runtime's LambdaContext; memory_limit_in_mb is a string there too.
class Context:
    function_name = name
    function_version = "$LATEST"
    invoked_function_arn = f"arn:aws:lambda:{region}:123456789012:function:{name}"
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


# What Lambda sets in every Python function's environment, besides the function's own variables (the
# Lambda developer guide, "Defined runtime environment variables"). Left out: the execution role's
# credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN: there is no role here),
# AWS_LAMBDA_RUNTIME_API (no runtime API here) and the X-Ray daemon's address (no daemon).
# Unreserved: a function's own variables may replace these.
LAMBDA_PATH = "/usr/local/bin:/usr/bin/:/bin:/opt/bin"
_UNRESERVED = {"LANG": "en_US.UTF-8", "PATH": LAMBDA_PATH}
INIT_SECONDS = 10  # Lambda gives a function's initialization (its imports) 10 s besides its timeout


@dataclass(frozen=True)
class Invocation:
    ok: bool
    result: Any  # the handler's answer, or {"errorType", "errorMessage", "stackTrace"}
    seconds: float
    logs: str  # what the handler printed
    payload: str = ""  # the answer as Lambda sends it: JSON text, or the bytes a handler returned


class CannotRunHere(Exception):
    """The asset can't run on this machine (another architecture's native code, or no interpreter)."""


def lambda_environment(
    asset_dir: Path,
    handler: str,
    *,
    name: str,
    memory: int,
    runtime: str,
    region: str,
    environment: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The whole environment of a local run: Lambda's own variables and the function's, nothing else.

    Nothing of this process's environment is passed on: no credentials (AWS_SECRET_ACCESS_KEY,
    AWS_PROFILE), no tokens (GITHUB_TOKEN), no HOME. Paths Lambda gives under /var/task name the asset
    folder instead.
    """
    reserved = {
        "_HANDLER": handler,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{runtime}" if runtime else "AWS_Lambda_python",
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "local",
        "LAMBDA_TASK_ROOT": str(asset_dir),
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "TZ": ":UTC",
    }
    unreserved = {**_UNRESERVED, "LD_LIBRARY_PATH": f"{asset_dir}:{asset_dir}/lib"}
    return {**unreserved, **(environment or {}), **reserved}


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
    environment: Mapping[str, str] | None = None,
    runtime: str = "",
    region: str = "us-east-1",
    runner: Runner | None = None,
    layers: Sequence[Path] = (),
) -> Invocation:
    """Call ``handler`` (``module.function``) from ``asset_dir`` with the interpreter ``python``.

    The handler sees only the function's ``environment`` and the variables Lambda sets itself (see
    ``lambda_environment``), and nothing is written into ``asset_dir``. It is stopped, as Lambda stops
    it, after ``timeout`` seconds (plus Lambda's 10 s for initialization).
    ``layers``: the ``python/`` folders of the function's layers (what Lambda puts at ``/opt/python``),
    searched after ``asset_dir``.
    """
    host = HOST_MACHINES.get(platform.machine().lower(), platform.machine())
    if architecture != host and any(any(folder.rglob("*.so")) for folder in (asset_dir, *layers)):
        raise CannotRunHere(f"its native code is for {architecture} and this machine is {host}")
    started = time.monotonic()
    env = lambda_environment(
        asset_dir, handler, name=name, memory=memory, runtime=runtime, region=region, environment=environment
    )
    args = [python, "-I", "-S", "-B", "-c", _BOOTSTRAP, str(asset_dir), handler, name, str(memory), architecture]
    args += [str(timeout), region, json.dumps([str(folder) for folder in layers])]
    done = (runner or Runner()).run(
        args, cwd=asset_dir, env=env, inherit_env=False, input=json.dumps(event), timeout=timeout + INIT_SECONDS
    )
    return answer_of(done, time.monotonic() - started, timeout)


def answer_of(done: Result, seconds: float, timeout: float) -> Invocation:
    """What the bootstrap's run said: the handler's answer (after a NUL), its error, or why it gave none."""
    logs, sep, payload = done.stdout.rpartition("\0")
    if done.timed_out:
        message = (
            f"Task timed out after {timeout:.2f} seconds (and {INIT_SECONDS} s for initialization): the "
            "handler was stopped, as Lambda stops it"
        )
        timed_out = {"errorType": "Sandbox.Timedout", "errorMessage": message}
        return Invocation(False, timed_out, seconds, done.stdout.replace("\0", "") + done.stderr)
    if not sep:
        message = done.stderr.strip() or f"the process exited {done.returncode} before the handler answered"
        return Invocation(False, {"errorType": "Runtime.ExitError", "errorMessage": message}, seconds, done.stdout)
    try:
        answer = json.loads(payload)
    except ValueError:
        answer = payload  # a handler that returned bytes: Lambda sends them as they are
    return Invocation(done.ok, answer, seconds, logs + done.stderr, payload)
