"""An image function started as Lambda starts it, in a fresh container of its image: invoked, or its init
profiled (``cdk-uv invoke`` and ``cdk-uv profile`` of image functions).

The same bootstrap as for a zip function (``_bootstrap``), run by the image's own Python
(``/var/lang/bin/python3`` in AWS's Lambda Python base images) through the container engine (``_engine``),
with the function's environment and the variables Lambda sets for an image function. A zip function starts
from its folder instead (``_start``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ._bootstrap import BOOTSTRAP
from ._engine import Engine
from ._invoke import Invocation, answer_of
from ._lambda import ARCHITECTURES, TASK_ROOT
from ._profile import Profile, Start, assemble, measure
from ._runner import Result
from ._start import RESPONSE_LIMIT

IMAGE_PYTHON = "/var/lang/bin/python3"  # the interpreter of AWS's Lambda Python base images


def invoke_image(
    engine: Engine,
    image: str,
    handler: str,
    event: Any,
    *,
    architecture: str = "x86_64",
    name: str = "function",
    memory: int = 128,
    timeout: int = 900,
    region: str = "us-east-1",
    environment: Mapping[str, str] | None = None,
) -> Invocation:
    """Call ``handler`` from ``/var/task`` with the image's own Python, as ``cdk-uv invoke`` does from a folder.

    The same bootstrap as for a zip function (``_bootstrap``), run by ``/var/lang/bin/python3`` in a fresh
    container with the function's environment and the variables Lambda sets for an image function.
    """
    settings = {"name": name, "memory": memory, "timeout": timeout, "region": region}
    started = time.monotonic()
    done = _image_start(
        engine, image, handler, architecture, environment, settings, mode="invoke", event=json.dumps(event)
    )
    return answer_of(done, time.monotonic() - started, timeout)


def profile_image(
    engine: Engine,
    image: str,
    handler: str,
    owners: dict[str, str],
    *,
    architecture: str = "x86_64",
    name: str = "function",
    memory: int = 128,
    timeout: int = 900,
    region: str = "us-east-1",
    environment: Mapping[str, str] | None = None,
    runs: int = 5,
    without_bytecode: bool = True,
) -> Profile:
    """``cdk-uv profile`` of an image function: each start a fresh container of ``image``, its init timed by
    the bootstrap inside; without bytecode, the container's ``/var/task`` loses its ``__pycache__`` first.
    ``owners``: the distributions of the built folder the image holds (``_profile.distributions_of``)."""
    settings = {"name": name, "memory": memory, "timeout": timeout, "region": region}

    def starts(bytecode: bool) -> Start:
        def one(flags: Sequence[str]) -> Result:
            return _image_start(
                engine, image, handler, architecture, environment, settings, mode="init", flags=flags, bytecode=bytecode
            )

        return one

    timed, traced = measure(starts(True), runs, trace=True)
    unshipped = measure(starts(False), runs, trace=False)[0] if without_bytecode else []
    return assemble(timed, unshipped, traced, owners)


# Prepended to the bootstrap for a start without the bytecode shipped: the container is thrown away after.
_WITHOUT_BYTECODE = f"""
import os as _os, shutil as _shutil
for _folder, _folders, _ in _os.walk({TASK_ROOT!r}):
    if "__pycache__" in _folders:
        _shutil.rmtree(_os.path.join(_folder, "__pycache__"))
        _folders.remove("__pycache__")
"""


def _image_start(
    engine: Engine,
    image: str,
    handler: str,
    architecture: str,
    environment: Mapping[str, str] | None,
    settings: Mapping[str, Any],
    *,
    mode: str,
    event: str = "",
    flags: Sequence[str] = (),
    bytecode: bool = True,
) -> Result:
    """The bootstrap run in a fresh container of ``image`` with Lambda's variables for an image function."""
    env = {
        **(environment or {}),
        "AWS_LAMBDA_FUNCTION_NAME": str(settings["name"]),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(settings["memory"]),
        "AWS_EXECUTION_ENV": "AWS_Lambda_Image",
    }
    config = {"task": TASK_ROOT, "handler": handler, **settings, "mode": mode, "limit": RESPONSE_LIMIT}
    script = BOOTSTRAP if bytecode else _WITHOUT_BYTECODE + BOOTSTRAP
    argv = [IMAGE_PYTHON, "-I", "-S", "-B", *flags, "-c", script, json.dumps(config)]
    return engine.run(image, argv, input=event, env=env, platform=ARCHITECTURES[architecture].docker_platform)
