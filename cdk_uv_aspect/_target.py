"""Target: what a function runs on (Python version, architecture, OS), read from the function itself."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from ._errors import TargetError

Arch = Literal["x86_64", "arm64"]

# Lambda's Python runtimes and the Amazon Linux each runs on: python3.9-3.11 run on Amazon Linux 2
# (glibc 2.26), python3.12 and newer on Amazon Linux 2023 (glibc 2.34). A wheel tagged manylinux_2_X loads
# on glibc >= X. uv knows no manylinux_2_26 platform, so Amazon Linux 2 takes manylinux2014 (2.17) wheels.
_AL2_PYTHONS = {"3.9", "3.10", "3.11"}
_RUNTIME = re.compile(r"^python(3\.\d+)$")
_MACHINE = {"x86_64": "x86_64", "arm64": "aarch64"}


@dataclass(frozen=True, order=True)
class Target:
    """A Lambda execution environment: ``Target("3.12", "arm64")``."""

    python: str
    arch: Arch

    @property
    def os(self) -> str:
        return "Amazon Linux 2" if self.python in _AL2_PYTHONS else "Amazon Linux 2023"

    @property
    def glibc(self) -> str:
        return "2.26" if self.python in _AL2_PYTHONS else "2.34"

    @property
    def machine(self) -> str:
        """The ELF machine name: ``aarch64`` for arm64."""
        return _MACHINE[self.arch]

    @property
    def python_platform(self) -> str:
        """The value of uv's ``--python-platform``."""
        if self.python in _AL2_PYTHONS:
            return f"{self.machine}-manylinux2014"
        return f"{self.machine}-manylinux_2_34"

    @property
    def runtime(self) -> str:
        return f"python{self.python}"

    @property
    def key(self) -> str:
        return f"{self.runtime}-{self.arch}"

    def __str__(self) -> str:
        return f"{self.runtime} {self.arch} ({self.os}, glibc {self.glibc})"


def target_of(runtime_name: str, family_is_python: bool, arch_name: str, *, where: str | None = None) -> Target:
    """Map a function's ``runtime.name`` and ``architecture.name`` to a Target."""
    match = _RUNTIME.match(runtime_name) if family_is_python else None
    if match is None:
        raise TargetError(
            f"the function's runtime is {runtime_name}, not a Python runtime",
            constructs=[where] if where else [],
            fix="remove the uv marker from this function, or give it a Python runtime such as Runtime.PYTHON_3_12",
        )
    if arch_name not in _MACHINE:
        raise TargetError(
            f"unknown architecture {arch_name!r}",
            constructs=[where] if where else [],
            fix="use Architecture.X86_64 or Architecture.ARM_64",
        )
    return Target(match.group(1), arch_name)  # type: ignore[arg-type]
