"""What the commands share: exit codes, the two expected failures, loading an assembly, sizes."""

from __future__ import annotations

from pathlib import Path

from .._assembly import AssemblyFunction, functions

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
