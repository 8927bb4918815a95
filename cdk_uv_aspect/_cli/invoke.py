"""cdk-uv invoke: run a synthesized function's handler locally, from its asset alone."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from .._assembly import AssemblyFunction
from .._invoke import Invocation
from .common import EXIT_FAILED, EXIT_OK, CannotRun, UsageError, load


def add_parser(commands: Any, debug: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "invoke",
        parents=[debug],
        help="run a synthesized function's handler locally, from its asset alone (or inside its image)",
        description="Run a function's handler the way the Lambda Python runtime would: with the "
        "runtime's Python version, only the asset folder, the python/ folders of its layers (in its "
        "order, as Lambda puts them at /opt/python) and the standard library importable, only the "
        "function's literal environment variables and those Lambda sets (none of this shell's: no "
        "credentials, tokens or HOME), a context object with the usual attributes, the event as JSON, "
        "and the function's timeout. Nothing is written into the assembly. Prints the result as JSON on "
        "stdout and the duration on stderr; when the handler raises or times out, prints why and exits 1. "
        "An image function's image is built as `cdk deploy` builds it, with the engine the CDK would use "
        "($CDK_DOCKER, else docker, else podman; the image is kept under cdkasset-<hash>, as cdk deploy "
        "keeps it), and its handler is called with the image's Python (/var/lang/bin/python3) from "
        "/var/task; without an engine it exits 3.",
        epilog="FUNCTION is a construct path (UvSample/Orders), its last part(s) (Orders), or any unique "
        "part of it; an unknown or ambiguous name lists the candidates.",
    )
    parser.add_argument(
        "args", nargs="+", metavar="[CDK_OUT] FUNCTION", help="the assembly folder (default: cdk.out) and the function"
    )
    parser.add_argument(
        "--event",
        default=None,
        metavar="FILE",
        help="a JSON file with the event, or - for standard input (default: {})",
    )
    parser.set_defaults(run=run)


def run(options: argparse.Namespace) -> int:
    from .._interpreters import find_python
    from .._invoke import CannotRunHere, invoke
    from .._uv import Uv

    if len(options.args) > 2:
        extra = " ".join(options.args[2:])
        raise UsageError(f"invoke takes [CDK_OUT] FUNCTION; {extra!r} is one argument too many")
    cdk_out, name = (
        (Path(options.args[0]), options.args[1]) if len(options.args) == 2 else (Path("cdk.out"), options.args[0])
    )
    fn = find_function(load(cdk_out), name)
    if fn.package_type == "Image":
        return _report(fn, *_invoke_image(fn, _event(options.event)))
    if fn.asset_dir is None or fn.handler is None or fn.python is None:
        raise UsageError(
            f"{fn.path} has no Python zip asset in {cdk_out} to run "
            f"(runtime {fn.runtime}, package type {fn.package_type})"
        )
    event = _event(options.event)
    python = find_python(Uv.locate(None).path, fn.python)
    if python is None:
        raise CannotRun(
            f"{fn.path}: no Python {fn.python} interpreter on this machine; install one where uv "
            f"finds it (`uv python install {fn.python}`)"
        )
    try:
        result = invoke(
            fn.asset_dir,
            fn.handler,
            python,
            event,
            architecture=fn.architecture,
            name=fn.path.rsplit("/", 1)[-1],
            memory=fn.memory,
            timeout=fn.timeout,
            environment=fn.environment,
            runtime=fn.runtime or "",
            # Where the stack would deploy when it names no region: the developer's region, as the CLI's.
            region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
            # Lambda extracts each layer into /opt: a Python layer's packages are in its python/ folder.
            layers=[layer / "python" for layer in fn.layers if (layer / "python").is_dir()],
        )
    except CannotRunHere as exc:
        raise CannotRun(f"{fn.path} can't run here: {exc}") from None
    return _report(fn, result, f"({fn.runtime}, {fn.architecture})")


def _report(fn: AssemblyFunction, result: Invocation, how: str) -> int:
    """Print the answer on stdout (or the error on stderr), and how long it took."""
    if result.logs.strip():
        print(result.logs.rstrip(), file=sys.stderr)
    took = f"{result.seconds * 1000:.0f} ms"
    if not result.ok:
        print(result.result.get("stackTrace") or json.dumps(result.result), file=sys.stderr)
        print(
            f"{fn.path}: {result.result.get('errorType')}: {result.result.get('errorMessage')} after {took}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    print(result.payload)  # as Lambda marshals it
    print(f"{fn.path}: answered in {took} {how}", file=sys.stderr)
    return EXIT_OK


def _invoke_image(fn: AssemblyFunction, event: object) -> tuple[Invocation, str]:
    """Build an image function's image as `cdk deploy` does, then call its handler inside it."""
    from .._engine import NoEngine, cannot_run, find_engine, invoke_image
    from .._runner import Runner

    if fn.image is None:
        raise UsageError(f"{fn.path} is an image function whose image is not built from this assembly (from ECR?)")
    engine = find_engine(Runner())
    if isinstance(engine, NoEngine):
        raise CannotRun(
            f"{fn.path} is an image function, and running it needs a container engine: {engine.reason}. "
            f"To get one: {engine.fix}"
        )
    cannot = cannot_run(fn.architecture)
    if cannot:
        raise CannotRun(f"{fn.path} can't run here: {cannot}")
    _say(f"{fn.path}: building its image as `cdk deploy` does ({engine} build, in {fn.image.directory})")
    tag, reused = engine.build(fn.image)
    handler = fn.command[0] if fn.command else _image_cmd(engine.inspect(tag, "{{json .Config.Cmd}}"))
    if handler is None:
        raise UsageError(f"{fn.path} has no handler: neither its ImageConfig nor its image sets a command")
    _say(f"{fn.path}: {'reused' if reused else 'built'} {tag}; calling {handler} with the image's Python")
    result = invoke_image(
        engine,
        tag,
        handler,
        event,
        architecture=fn.architecture,
        name=fn.path.rsplit("/", 1)[-1],
        memory=fn.memory,
        timeout=fn.timeout,
        region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        environment=fn.environment,
    )
    return result, f"inside its image, starting a container included ({engine}, {fn.architecture})"


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _image_cmd(text: str) -> str | None:
    cmd = json.loads(text or "null")
    return str(cmd[0]) if isinstance(cmd, list) and cmd else None


def find_function(candidates: list[AssemblyFunction], name: str) -> AssemblyFunction:
    """The one function ``name`` means: its full path, its last path parts, or a unique part of its path."""
    name = name.strip("/")
    tiers = (
        [f for f in candidates if f.path == name],
        [f for f in candidates if f.path.endswith("/" + name)],
        [f for f in candidates if name in f.path],
    )
    matches = next((tier for tier in tiers if tier), [])
    if len(matches) == 1:
        return matches[0]
    if not candidates:
        raise UsageError("the assembly has no Lambda functions")
    listed = "\n  ".join(f.path for f in (matches or candidates))
    what = "matches several functions" if matches else "matches no function"
    raise UsageError(f"{name!r} {what}; candidates:\n  {listed}")


def _event(arg: str | None) -> object:
    if arg is None:
        return {}
    where = "standard input" if arg == "-" else arg
    try:
        text = sys.stdin.read() if arg == "-" else Path(arg).read_text()
    except OSError as exc:
        raise UsageError(f"can't read the event from {where}: {exc.strerror}") from None
    try:
        return json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise UsageError(f"the event in {where} is not JSON: {exc}") from None
