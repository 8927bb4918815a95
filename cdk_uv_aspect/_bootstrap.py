"""The bootstrap: what runs inside the runtime's Python to start a function as the Lambda Python runtime does.

One script for ``cdk-uv invoke`` (of a zip function, and of an image function inside its image) and
``cdk-uv profile``. It takes one argument, a JSON object:

- ``task``: the function's code (``/var/task``); ``path``: what Lambda puts after it on ``sys.path`` (the
  layers' ``/opt/python/lib/pythonX.Y/site-packages`` and ``/opt/python``);
- ``handler``, ``name``, ``memory``, ``timeout``, ``region``: the function's;
- ``mode``: ``"invoke"`` (init, then call the handler with the event read from standard input) or ``"init"``
  (init only: what a cold start costs);
- ``limit``: the largest answer Lambda returns from a synchronous invocation, in bytes.

It writes the handler's output as it comes, then a NUL and the answer (or the error, as Lambda words it,
with exit status 1). It writes a NUL line on standard error just before the init, so that what
``-X importtime`` prints after it is the function's own. It makes itself the reaper of orphaned
processes, and when the handler has answered (or on SIGTERM) it ends every process the handler left
running: Lambda freezes them with the execution environment, and nothing here would ever thaw them.
It runs on every Python a Lambda runtime has (3.8 and newer): no syntax newer than that.
"""

from __future__ import annotations

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


"""

_RUNTIME = r"""
import json, os, signal, sys, time, traceback, uuid

CONFIG = json.loads(sys.argv[1])
sys.path[0:0] = [CONFIG["task"]] + CONFIG.get("path", [])


class Fault(Exception):
    def __init__(self, kind, message, trace=None):
        Exception.__init__(self, message)
        self.kind, self.message, self.trace = kind, message, trace or []


def error(kind, message, trace=None):
    return {"errorMessage": message, "errorType": kind, "requestId": "", "stackTrace": trace or []}


def children():
    found = []
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open("/proc/self/task/" + tid + "/children") as file:
                found += [int(pid) for pid in file.read().split()]
        except OSError:
            pass
    return found


def running(pid):
    try:
        with open("/proc/%d/stat" % pid) as file:
            return file.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def end_children():
    ended = 0
    for _ in range(100):
        pids = children()
        if not pids:
            break
        for pid in pids:
            ended += running(pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        for pid in pids:
            try:
                os.waitpid(pid, 0)
            except OSError:
                pass
    if ended:
        sys.stderr.write(
            "cdk-uv: ended %d process(es) the handler left running (Lambda freezes them with the execution "
            "environment)\n" % ended
        )


def finish(payload, status):
    sys.stdout.flush()
    sys.stderr.flush()
    end_children()
    os.write(1, b"\0" + payload)
    os._exit(status)


def fail(kind, message, trace=None):
    finish(json.dumps(error(kind, message, trace)).encode("utf-8"), 1)


def terminated(signum, frame):
    end_children()
    os._exit(128 + signum)


try:  # Orphans of the handler's processes come to this process (PR_SET_CHILD_SUBREAPER), to be ended.
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)
except Exception:
    pass
signal.signal(signal.SIGTERM, terminated)


def load(handler):
    try:
        modname, fname = handler.rsplit(".", 1)
    except ValueError as exc:
        raise Fault("Runtime.MalformedHandlerName", "Bad handler '%s': %s" % (handler, exc))
    try:
        if modname.split(".")[0] in sys.builtin_module_names:
            raise Fault("Runtime.BuiltInModuleConflict", "Cannot use built-in module %s as a handler module" % modname)
        # __import__, as an import statement: -X importtime reports only what goes through it, and the
        # handler's own module and package are the init's first lines.
        name = modname.replace("/", ".")
        __import__(name)
        module = sys.modules[name]
    except ImportError as exc:
        raise Fault("Runtime.ImportModuleError", "Unable to import module '%s': %s" % (modname, exc))
    except SyntaxError as exc:
        trace = ['  File "%s" Line %s\n    %s' % (exc.filename, exc.lineno, exc.text)]
        raise Fault("Runtime.UserCodeSyntaxError", "Syntax error in module '%s': %s" % (modname, exc), trace)
    try:
        return getattr(module, fname)
    except AttributeError:
        raise Fault("Runtime.HandlerNotFound", "Handler '%s' missing on module '%s'" % (fname, modname))


def user_trace(tb):
    frames = traceback.extract_tb(tb)
    while frames and frames[0].filename == "<string>":  # this bootstrap's own frames
        frames = frames[1:]
    return traceback.format_list(frames)


# The attributes of the Python runtime's LambdaContext; memory_limit_in_mb is a string there too.
class Context:
    function_name = CONFIG["name"]
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:%s:123456789012:function:%s" % (CONFIG["region"], CONFIG["name"])
    memory_limit_in_mb = str(CONFIG["memory"])
    aws_request_id = str(uuid.uuid4())
    log_group_name = "/aws/lambda/" + CONFIG["name"]
    log_stream_name = "local"
    identity = None
    client_context = None

    def __init__(self):
        self._deadline = time.monotonic() + int(CONFIG["timeout"])

    def get_remaining_time_in_millis(self):
        return int(max(self._deadline - time.monotonic(), 0) * 1000)


sys.stderr.write("\0\n")
sys.stderr.flush()
started = time.perf_counter()
try:
    function = load(CONFIG["handler"])
except Fault as fault:
    fail(fault.kind, fault.message, fault.trace)
except Exception as exc:
    fail(type(exc).__name__, str(exc), user_trace(sys.exc_info()[2]))
init_ms = (time.perf_counter() - started) * 1000
if CONFIG["mode"] == "init":
    finish(json.dumps({"initMs": init_ms}).encode("utf-8"), 0)
event = json.loads(sys.stdin.read() or "{}")
try:
    result = function(event, Context())
except Exception as exc:
    fail(type(exc).__name__, str(exc), user_trace(sys.exc_info()[2]))
try:
    payload = result if isinstance(result, bytes) else _encode(result, frozenset()).encode("utf-8")
except Exception as exc:
    fail("Runtime.MarshalError", "Unable to marshal response: " + str(exc))
if len(payload) > CONFIG["limit"]:
    fail(
        "Function.ResponseSizeTooLarge",
        "Response payload size exceeded maximum allowed payload size (%d bytes)." % CONFIG["limit"],
    )
finish(payload, 0)
"""

BOOTSTRAP = _MARSHAL + _RUNTIME
