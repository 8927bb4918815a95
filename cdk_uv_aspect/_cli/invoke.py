"""cdk-uv invoke: run a synthesized function's handler locally, from its asset alone."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._assembly import AssemblyFunction
from .common import EXIT_FAILED, EXIT_OK, CannotRun, UsageError, assembly_and_function, lambda_function, region

if TYPE_CHECKING:
    from .._engine import Engine
    from .._invoke import Invocation

REQUEST_LIMIT = 6_291_456  # _start.REQUEST_LIMIT, without importing it before the command runs


def add_parser(commands: Any, debug: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "invoke",
        parents=[debug],
        help="run a synthesized function's handler locally, from its asset alone (or inside its image)",
        description="Run a function's handler the way the Lambda Python runtime would: with the "
        "runtime's Python version, only the asset folder, the python/ folders of its layers (in its "
        "order, as Lambda puts them at /opt/python) and the standard library importable, from a private, "
        "read-only copy; the function's literal environment variables (those set only at deploy time are "
        "named and left out: give them with --env or --env-file) and those Lambda sets, none of this "
        "shell's (no credentials, tokens or home: HOME is an empty folder of its own, removed after); a "
        "context object with the usual attributes, the event as JSON (at most 6 MB, as Lambda takes), "
        "the function's timeout, and an answer of at most 6 MB. The assembly is checked unchanged after "
        "the run. arm64 native code on an x86_64 machine (and the reverse) runs under qemu-user "
        "emulation where that is available. Prints the result as JSON on stdout and the duration on "
        "stderr; when the handler raises or times out, prints why and exits 1. "
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
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a variable of the function's environment (repeatable; wins over the env file)",
    )
    parser.add_argument(
        "--env-file",
        metavar="FILE",
        help='variables from a file: SAM\'s --env-vars JSON ({"<function>": {...}, "Parameters": {...}}) '
        "or a dotenv file (NAME=VALUE lines)",
    )
    parser.set_defaults(run=run)


def run(options: argparse.Namespace) -> int:
    from .._invoke import invoke
    from .._start import CannotRunHere, interpreter
    from .environment import environment, unset

    cdk_out, fn = assembly_and_function(options.args, "invoke")
    values = environment(fn, options.env, options.env_file)
    event = _event(options.event)
    left_out = unset(fn, values)
    if left_out:
        _say(left_out)
    if fn.package_type == "Image":
        return _report(fn, *_invoke_image(fn, event, values))
    function = lambda_function(fn, cdk_out, values)
    try:
        command = interpreter(function)
    except CannotRunHere as exc:
        raise CannotRun(f"{fn.path} can't run here: {exc}") from None
    result = invoke(function, event, command=command)
    code = _report(fn, result, f"({fn.runtime}, {fn.architecture}{emulation(command)})")
    if result.changed:
        shown = "\n  ".join(result.changed)
        _say(
            f"cdk-uv: {fn.path}: the run changed the cloud assembly it was started from:\n  {shown}\n"
            "what gets deployed is no longer what was built: synthesize again (`cdk synth`) before deploying"
        )
        return EXIT_FAILED
    return code


def emulation(command: list[str]) -> str:
    """ ", under qemu-aarch64-static" when ``command`` runs the interpreter under emulation."""
    name = Path(command[0]).name
    return f", under {name}" if name.startswith("qemu-") else ""


def _report(fn: AssemblyFunction, result: Invocation, how: str) -> int:
    """Print the answer on stdout (or the error on stderr), and how long it took."""
    if result.logs.strip():
        print(result.logs.rstrip(), file=sys.stderr)
    took = f"{result.seconds * 1000:.0f} ms"
    if not result.ok:
        trace = result.result.get("stackTrace")
        if isinstance(trace, list) and trace:
            print("Traceback (most recent call last):\n" + "".join(trace).rstrip(), file=sys.stderr)
        elif not trace:
            print(json.dumps(result.result), file=sys.stderr)
        print(
            f"{fn.path}: {result.result.get('errorType')}: {result.result.get('errorMessage')} after {took}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    print(result.payload)  # as Lambda marshals it
    print(f"{fn.path}: answered in {took} {how}", file=sys.stderr)
    return EXIT_OK


def _invoke_image(fn: AssemblyFunction, event: object, environment: dict[str, str]) -> tuple[Invocation, str]:
    """Build an image function's image as `cdk deploy` does, then call its handler inside it."""
    from .._imagestart import invoke_image

    engine, tag, handler = image_ready(fn)
    _say(f"{fn.path}: calling {handler} with the image's Python")
    result = invoke_image(
        engine,
        tag,
        handler,
        event,
        architecture=fn.architecture,
        name=fn.path.rsplit("/", 1)[-1],
        memory=fn.memory,
        timeout=fn.timeout,
        region=region(),
        environment=environment,
    )
    return result, f"inside its image, starting a container included ({engine}, {fn.architecture})"


def image_ready(fn: AssemblyFunction) -> tuple[Engine, str, str]:
    """An image function's image built as `cdk deploy` builds it: the engine, the image's tag, the handler."""
    from .._engine import NoEngine, cannot_run, find_engine
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
    _say(f"{fn.path}: {'reused' if reused else 'built'} {tag}")
    return engine, tag, handler


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _image_cmd(text: str) -> str | None:
    cmd = json.loads(text or "null")
    return str(cmd[0]) if isinstance(cmd, list) and cmd else None


def _event(arg: str | None) -> object:
    """The event: JSON from a file or standard input, refused beyond Lambda's 6 MB (read no further)."""
    if arg is None:
        return {}
    where = "standard input" if arg == "-" else arg
    try:
        if arg == "-":
            data = sys.stdin.buffer.read(REQUEST_LIMIT + 1)
        else:
            with Path(arg).open("rb") as file:
                data = file.read(REQUEST_LIMIT + 1)
    except OSError as exc:
        raise UsageError(f"can't read the event from {where}: {exc.strerror}") from None
    if len(data) > REQUEST_LIMIT:
        raise UsageError(
            f"the event in {where} is larger than Lambda takes: a synchronous invocation's payload must be "
            f"smaller than {REQUEST_LIMIT} bytes (6 MB)"
        )
    try:
        return json.loads(data.decode("utf-8") or "{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"the event in {where} is not JSON: {exc}") from None
