"""Start: a function started on this machine as Lambda starts it. ``cdk-uv invoke`` and ``cdk-uv profile`` share it.

- **The runtime's Python** (``interpreter``): this machine's CPython of the runtime's version; for another
  architecture's native code, that architecture's CPython under qemu-user (``_interpreters.runtime_python``),
  or a refusal saying what would make it work.
- **A sandbox** (``_sandbox``): a private folder, removed after, with a read-only copy of the code and the
  layers, a home and a ``tmp`` of its own; the originals checked unchanged after the run.
- **Lambda's environment** (``lambda_environment``) and nothing of this process's: no credentials, no
  tokens, no home. ``HOME`` names the sandbox's empty home, so ``os.path.expanduser("~")`` never falls
  back to the password database (the developer's home), and the AWS SDKs' shared files name nothing.
- **The bootstrap** (``_bootstrap``) run by ``python -I -S -B``: nothing of this machine's site-packages
  importable, no bytecode written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ._bootstrap import BOOTSTRAP
from ._emulation import NotEmulated, host_architecture
from ._runner import Result, Runner
from ._sandbox import Sandbox

# What Lambda sets in every Python function's environment, besides the function's own variables (the
# Lambda developer guide, "Defined runtime environment variables"). Left out: the execution role's
# credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN: there is no role here),
# AWS_LAMBDA_RUNTIME_API (no runtime API here) and the X-Ray daemon's address (no daemon).
RESERVED = (
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
)
"""Variables a function can't set itself: Lambda refuses them at deploy ("reserved keys"). The execution
role's credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) are reserved too, but a local
run has no role: values given for them stand in for its credentials."""

LAMBDA_PATH = "/usr/local/bin:/usr/bin/:/bin:/opt/bin"
INIT_SECONDS = 10  # Lambda gives a function's initialization (its imports) 10 s besides its timeout
REQUEST_LIMIT = 6_291_456  # Lambda: "Request must be smaller than 6291456 bytes for the InvokeFunction operation"
RESPONSE_LIMIT = 6_291_556  # Lambda: "Response payload size exceeded maximum allowed payload size (6291556 bytes)."


class CannotRunHere(Exception):
    """The function can't run on this machine: the message says why and what would make it work."""


class AssemblyChanged(Exception):
    """A run changed the folders the function was started from (the cloud assembly's)."""


@dataclass(frozen=True)
class LambdaFunction:
    """A function as Lambda starts it: its code, handler, runtime, architecture and settings."""

    code: Path  # the folder Lambda unpacks at /var/task
    handler: str  # "module.function"
    python: str  # the runtime's Python version, "3.12"
    architecture: str = "x86_64"
    name: str = "function"
    memory: int = 128
    timeout: int = 3
    runtime: str = ""  # "python3.12"; "" for an image
    region: str = "us-east-1"
    environment: Mapping[str, str] = field(default_factory=dict)
    layers: tuple[Path, ...] = ()  # the layers' folders (each holding python/), in the function's order


def interpreter(fn: LambdaFunction, uv: str | None = None) -> list[str]:
    """The command that runs the runtime's Python for ``fn`` here; ``CannotRunHere`` saying why not.

    Another architecture's code runs on this machine's Python when it has no native code (Python and
    bytecode are the same everywhere), else under qemu-user emulation where that is available.
    """
    from ._interpreters import runtime_python

    host = host_architecture()
    native = fn.architecture != host and has_native_code([fn.code, *fn.layers])
    python = runtime_python(fn.python, fn.architecture if native else host, uv)
    if isinstance(python, NotEmulated):
        raise CannotRunHere(f"its native code is for {fn.architecture}: {python}")
    if python is None:
        raise CannotRunHere(
            f"there is no Python {fn.python} interpreter on this machine; install one where uv finds it "
            f"(`uv python install {fn.python}`, or pyenv, asdf, your OS's packages)"
        )
    return python


def has_native_code(folders: Sequence[Path]) -> bool:
    """Whether any of ``folders`` holds a shared library (a wheel's compiled extension)."""
    return any(any(folder.rglob("*.so")) or any(folder.rglob("*.so.*")) for folder in folders if folder.is_dir())


def lambda_environment(fn: LambdaFunction, box: Sandbox) -> dict[str, str]:
    """The whole environment of a local start: Lambda's own variables and the function's, nothing else.

    Nothing of this process's environment is passed on: no credentials (AWS_SECRET_ACCESS_KEY,
    AWS_PROFILE), no tokens (GITHUB_TOKEN), no home. What Lambda has at /var/task and /opt is the
    sandbox's; ``HOME`` and ``TMPDIR`` name its empty home and its tmp; the AWS SDKs' shared config and
    credentials files name files that do not exist, and the instance metadata service is off (no role
    of this machine reaches the handler).
    """
    reserved = {
        "_HANDLER": fn.handler,
        "AWS_REGION": fn.region,
        "AWS_DEFAULT_REGION": fn.region,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{fn.runtime}" if fn.runtime else "AWS_Lambda_python",
        "AWS_LAMBDA_FUNCTION_NAME": fn.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{fn.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "local",
        "LAMBDA_TASK_ROOT": str(box.task),
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "TZ": ":UTC",
    }
    unreserved = {
        "LANG": "en_US.UTF-8",
        "PATH": LAMBDA_PATH,
        "LD_LIBRARY_PATH": f"{box.task}:{box.task}/lib:{box.opt}/lib",
        "HOME": str(box.home),
        "TMPDIR": str(box.tmp),
        "AWS_CONFIG_FILE": str(box.home / ".aws" / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(box.home / ".aws" / "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    return {**unreserved, **fn.environment, **reserved}


def start(
    fn: LambdaFunction,
    box: Sandbox,
    command: Sequence[str],
    *,
    mode: str,
    event: str = "",
    flags: Sequence[str] = (),
    runner: Runner | None = None,
) -> Result:
    """Run the bootstrap for ``fn`` in ``box`` with the interpreter ``command``: ``mode`` "invoke" or "init".

    ``flags`` go to the interpreter (``-X importtime``). Stopped, as Lambda stops it, after the function's
    timeout plus Lambda's 10 s for initialization.
    """
    config = {
        "task": str(box.task),
        # What Lambda puts on sys.path after the code: the layers' folders for Python, in its order.
        "path": [str(box.opt / "python" / "lib" / f"python{fn.python}" / "site-packages"), str(box.opt / "python")],
        "handler": fn.handler,
        "name": fn.name,
        "memory": fn.memory,
        "timeout": fn.timeout,
        "region": fn.region,
        "mode": mode,
        "limit": RESPONSE_LIMIT,
    }
    args = [*command, "-I", "-S", "-B", *flags, "-c", BOOTSTRAP, json.dumps(config)]
    return (runner or Runner()).run(
        args,
        cwd=box.task,
        env=lambda_environment(fn, box),
        inherit_env=False,
        input=event,
        timeout=fn.timeout + INIT_SECONDS,
    )
