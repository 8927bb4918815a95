"""Target: what a function runs on (Python version, architecture, OS), read from the function itself."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass

from ._errors import TargetError
from ._lambda import ARCHITECTURES, DECLARABLE_OS, RUNTIMES, Arch, OperatingSystem, PythonRuntime


@dataclass(frozen=True, order=True)
class Target:
    """A Lambda execution environment: ``Target("3.12", "arm64")``. Its facts come from ``_lambda``; a
    runtime that is not there yet has its OS declared (``UvOptions(new_runtimes)``): ``declared_os``."""

    python: str
    arch: Arch
    declared_os: str | None = None  # a key of DECLARABLE_OS, for a runtime RUNTIMES does not list

    @property
    def lambda_runtime(self) -> PythonRuntime:
        if self.declared_os is not None:  # no lifecycle dates are known for it
            return PythonRuntime(self.runtime, DECLARABLE_OS[self.declared_os], None, None, None)
        return RUNTIMES[self.runtime]

    @property
    def os(self) -> OperatingSystem:
        return self.lambda_runtime.os

    @property
    def glibc(self) -> str:
        return self.os.glibc

    @property
    def machine(self) -> str:
        """The ELF machine name: ``aarch64`` for arm64."""
        return ARCHITECTURES[self.arch].machine

    @property
    def docker_platform(self) -> str:
        return ARCHITECTURES[self.arch].docker_platform

    @property
    def python_platform(self) -> str:
        """The value of uv's ``--python-platform``: ``aarch64-manylinux2014``."""
        return f"{self.machine}-{self.os.wheel_policy}"

    @property
    def runtime(self) -> str:
        return f"python{self.python}"

    @property
    def key(self) -> str:
        return f"{self.runtime}-{self.arch}"

    def __str__(self) -> str:
        return f"{self.runtime} {self.arch} ({self.os.name}, glibc {self.glibc})"


def target_of(
    runtime_name: str,
    arch_name: str,
    *,
    today: datetime.date | None = None,
    new_runtimes: Mapping[str, str] | None = None,
) -> Target:
    """The Target of a function whose ``runtime.name`` and ``architecture.name`` are these.

    ``new_runtimes``: Python runtimes the table of Lambda facts does not list yet, with the OS each runs on
    (``{"python3.15": "al2023"}``). Any other runtime that is not in the table, and one that Lambda retired
    (functions on it can't be updated), is refused by name.
    """
    runtime = RUNTIMES.get(runtime_name)
    declared = (new_runtimes or {}).get(runtime_name) if runtime is None else None
    if declared is not None:
        runtime = PythonRuntime(runtime_name, DECLARABLE_OS[declared], None, None, None)
    if runtime is None:
        if runtime_name.startswith("python"):
            from . import _state

            declare = (
                f"--os al2023 (or al2) with --python {runtime_name.removeprefix('python')}"
                if _state.COMMAND_LINE.is_set()
                else f'UvBundlingAspect(new_runtimes={{"{runtime_name}": "al2023"}})'
            )
            raise TargetError(
                f"the function's runtime {runtime_name} is not one cdk-uv-aspect knows: its Amazon Linux "
                "and glibc are unknown, so no wheels can be chosen for it",
                fix="upgrade cdk-uv-aspect, or declare the Amazon Linux the runtime runs on (the Lambda "
                f"runtimes page lists it): {declare}",
            )
        raise TargetError(
            f"the function's runtime is {runtime_name}, not a Python runtime",
            fix="remove the uv marker from this function, or give it a Python runtime such as Runtime.PYTHON_3_12",
        )
    if runtime.retired(today or datetime.date.today()):
        from . import _state

        supported = "--python 3.13" if _state.COMMAND_LINE.is_set() else "Runtime.PYTHON_3_13"
        raise TargetError(
            f"Lambda retired {runtime_name}: functions on it can't be created or updated since "
            f"{runtime.update_blocked:%Y-%m-%d}, so nothing built for it could deploy",
            fix=f"move the function to a supported runtime, e.g. {supported}",
        )
    if arch_name not in ARCHITECTURES:
        raise TargetError(
            f"unknown architecture {arch_name!r}",
            fix="use Architecture.X86_64 or Architecture.ARM_64",
        )
    return Target(runtime.python, ARCHITECTURES[arch_name].name, declared)
