"""What the commands share: exit codes, the two expected failures, an assembly and its functions, sizes,
help text."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

from .._assembly import AssemblyFunction, functions

if TYPE_CHECKING:
    from .._start import LambdaFunction

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANNOT_RUN = 0, 1, 2, 3


class UsageError(Exception):
    """Bad input from the command line: exit code 2, no traceback."""


class CannotRun(Exception):
    """The function can't run on this machine: exit code 3."""


def load(cdk_out: Path) -> list[AssemblyFunction]:
    if not (cdk_out / "manifest.json").is_file():
        raise UsageError(
            f"{cdk_out} is not a cloud assembly (no manifest.json): run `cdk synth` first, "
            "or give the assembly folder (cdk synth --output DIR)"
        )
    return functions(cdk_out)


def size(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


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


def assembly_and_function(args: list[str], command: str) -> tuple[Path, AssemblyFunction]:
    """``[CDK_OUT] FUNCTION``: the assembly folder (default cdk.out) and the function it names."""
    if len(args) > 2:
        raise UsageError(f"{command} takes [CDK_OUT] FUNCTION; {' '.join(args[2:])!r} is one argument too many")
    cdk_out, name = (Path(args[0]), args[1]) if len(args) == 2 else (Path("cdk.out"), args[0])
    return cdk_out, find_function(load(cdk_out), name)


def region() -> str:
    """Where the stack would deploy when it names no region: the developer's region, as the CDK CLI's."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def lambda_function(fn: AssemblyFunction, cdk_out: Path, environment: dict[str, str]) -> LambdaFunction:
    """A zip function of the assembly as Lambda starts it: its asset, its layers, its settings."""
    from .._start import LambdaFunction

    if fn.asset_dir is None or fn.handler is None or fn.python is None or fn.runtime is None:
        raise UsageError(
            f"{fn.path} has no Python zip asset in {cdk_out} to run "
            f"(runtime {fn.runtime}, package type {fn.package_type})"
        )
    return LambdaFunction(
        code=fn.asset_dir,
        handler=fn.handler,
        python=fn.python,
        architecture=fn.architecture,
        name=fn.path.rsplit("/", 1)[-1],
        memory=fn.memory,
        timeout=fn.timeout,
        runtime=fn.runtime,
        region=region(),
        environment=environment,
        layers=fn.layers,
    )


def wrapped(text: str) -> str:
    """A help description wrapped for a terminal: a command whose epilog holds examples needs argparse's
    raw formatter, which prints its description as written."""
    return textwrap.fill(text, 92)
