"""cdk-uv profile: a synthesized function's cold start measured from its asset, and where it goes."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from .._assembly import AssemblyFunction
from .common import EXIT_FAILED, EXIT_OK, CannotRun, UsageError, assembly_and_function, lambda_function, region

if TYPE_CHECKING:
    from .._profile import Profile


def add_parser(commands: Any, debug: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "profile",
        parents=[debug],
        help="measure a synthesized function's cold start from its asset, module by module",
        description="Start a function the way Lambda would, several times, each a fresh process of the "
        "runtime's Python from a private copy of its asset, with its layers and Lambda's environment "
        "(as `cdk-uv invoke`) and the bytecode as shipped, and stop once its handler is ready. Prints "
        "the init (importing the handler's module: the median of the runs), then where it goes, from one "
        "more run with `python -X importtime`: each distribution's share and the modules that took "
        "longest; and the same start without the bytecode shipped. A local measurement: Lambda's own "
        "start adds a fixed cost, and its CPU follows the function's memory. Functions that can't run "
        "here (another architecture's native code, an image function without a container engine) are "
        "refused with the reason (exit 3); an image function is started in fresh containers of its image, "
        "built as for invoke. An init that raises exits 1.",
        epilog="FUNCTION is a construct path (UvSample/Orders), its last part(s) (Orders), or any unique part of it.",
    )
    parser.add_argument(
        "args", nargs="+", metavar="[CDK_OUT] FUNCTION", help="the assembly folder (default: cdk.out) and the function"
    )
    parser.add_argument("--runs", type=int, default=5, metavar="N", help="cold starts to measure (default: 5)")
    parser.add_argument(
        "--top", type=int, default=10, metavar="N", help="modules and distributions shown (default: 10)"
    )
    parser.add_argument("--json", action="store_true", help="print the whole profile as JSON on stdout")
    parser.add_argument("--no-compare", action="store_true", help="skip the start without bytecode (half the runs)")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a variable of the function's environment, as for invoke (repeatable)",
    )
    parser.add_argument("--env-file", metavar="FILE", help="variables from SAM's --env-vars JSON or a dotenv file")
    parser.set_defaults(run=run)


def run(options: argparse.Namespace) -> int:
    from .._emulation import host_architecture
    from .._profile import AssemblyChangedError, InitFailed, profile
    from .._start import CannotRunHere, has_native_code, interpreter
    from .environment import environment, unset

    if options.runs < 1 or options.top < 1:
        raise UsageError("--runs and --top take a number of at least 1")
    cdk_out, fn = assembly_and_function(options.args, "profile")
    values = environment(fn, options.env, options.env_file)
    left_out = unset(fn, values)
    if left_out:
        print(left_out, file=sys.stderr)
    host = host_architecture()
    emulated = (
        f"{fn.path} can't be profiled here: its native code is for {fn.architecture} and this machine is {host}; "
        f"under qemu-user emulation (`cdk-uv invoke` runs it so) the times would be the emulator's, not the "
        f"function's. Profile it on an {fn.architecture} machine"
    )
    try:
        if fn.package_type == "Image":
            if fn.architecture != host:
                raise CannotRun(emulated)
            measured = _profile_image(fn, values, options)
            what = f"{fn.path} (image, {fn.architecture})"
        else:
            function = lambda_function(fn, cdk_out, values)
            if function.architecture != host and has_native_code([function.code, *function.layers]):
                raise CannotRun(emulated)
            try:
                command = interpreter(function)
            except CannotRunHere as exc:
                raise CannotRun(f"{fn.path} can't run here: {exc}") from None
            what = f"{fn.path} ({fn.runtime}, {fn.architecture})"
            print(f"{what}: {options.runs} cold start(s) from its asset...", file=sys.stderr, flush=True)
            measured = profile(function, command, runs=options.runs, without_bytecode=not options.no_compare)
    except InitFailed as exc:
        if exc.logs.strip():
            print(exc.logs.rstrip(), file=sys.stderr)
        print(f"{fn.path}: its init fails, as every cold start on Lambda would: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except AssemblyChangedError as exc:
        print(f"cdk-uv: {fn.path}: {exc}; synthesize again (`cdk synth`) before deploying", file=sys.stderr)
        return EXIT_FAILED
    if options.json:
        data = {"function": fn.path, "runtime": fn.runtime, "architecture": fn.architecture, "handler": fn.handler}
        print(json.dumps({**data, "runs": options.runs, **measured.as_json()}, indent=2))
        return EXIT_OK
    print(_text(what, fn.handler or (fn.command[0] if fn.command else ""), measured, options.top, fn.image))
    return EXIT_OK


def _profile_image(fn: AssemblyFunction, environment: dict[str, str], options: argparse.Namespace) -> Profile:
    """An image function's cold starts, each a fresh container of the image `cdk deploy` would build."""
    from .._imagestart import profile_image
    from .._profile import distributions_of
    from .invoke import image_ready

    engine, tag, handler = image_ready(fn)
    assert fn.image is not None  # image_ready refuses an image this assembly does not build
    print(f"{fn.path}: {options.runs} cold start(s), each a fresh container...", file=sys.stderr, flush=True)
    return profile_image(
        engine,
        tag,
        handler,
        distributions_of([fn.image.directory]),
        architecture=fn.architecture,
        name=fn.path.rsplit("/", 1)[-1],
        memory=fn.memory,
        timeout=fn.timeout,
        region=region(),
        environment=environment,
        runs=options.runs,
        without_bytecode=not options.no_compare,
    )


def _text(what: str, handler: str, measured: Profile, top: int, image: Any) -> str:
    module = handler.rpartition(".")[0]
    runs = measured.init_runs
    whole = "with the container's start" if image is not None else "with Python's own start"
    where = "in its image" if image is not None else "from its asset"
    lines = [
        f"{what}: cold start {where}, {len(runs)} run(s)",
        f"  init (import {module}): {measured.init_ms:.0f} ms median (min {min(runs):.0f}, max {max(runs):.0f}); "
        f"{whole}, {measured.start_ms:.0f} ms",
    ]
    if measured.unshipped_ms is not None:
        saved = measured.unshipped_ms - measured.init_ms
        share = f" ({saved / measured.unshipped_ms:.0%})" if measured.unshipped_ms > 0 else ""
        lines.append(
            f"  without the bytecode shipped: {measured.unshipped_ms:.0f} ms median; the bytecode saves "
            f"{saved:.0f} ms{share}"
        )
    total = measured.imported_ms or 1.0
    lines += [
        "",
        f"  where the init goes (python -X importtime, one more run: {measured.imported_ms:.0f} ms of imports)",
    ]
    lines.append(f"    {'distribution':<32} {'ms':>8} {'share':>6}")
    for name, ms in measured.distributions()[:top]:
        lines.append(f"    {name:<32} {ms:>8.1f} {ms / total:>6.0%}")
    lines += ["", f"    {'module (own time)':<44} {'ms':>8} {'with imports':>12}  distribution"]
    for entry in measured.top(top):
        lines.append(f"    {entry.module:<44} {entry.self_ms:>8.1f} {entry.cumulative_ms:>12.1f}  {entry.distribution}")
    lines += [
        "",
        "  A local measurement: on Lambda the runtime's own start adds a fixed cost,",
        "  and the CPU share follows the function's memory.",
    ]
    return "\n".join(lines)
