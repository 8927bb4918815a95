"""Emulation: another architecture's Python run here under qemu-user, or exactly what would make that work.

A Lambda function for arm64 with native code (a wheel's ``.so``) can't be imported by this machine's
x86_64 Python (nor the reverse). qemu-user runs the other architecture's programs: with an interpreter
of that architecture and its C library (an arm64 root filesystem, or qemu's cross-C-library folder), the
function's own Python imports its own native code. Nothing here is executed to find out: the candidates
are ELF files read by their header, in the places people keep them:

- a root filesystem of the architecture named by ``$QEMU_LD_PREFIX`` (qemu's own variable), Debian's
  qemu default ``/etc/qemu-binfmt/<arch>``, the cross C library ``/usr/<triplet>-linux-gnu``, or ``/``
  itself with multiarch libraries; in it ``var/lang/bin`` (a Lambda base image exported),
  ``usr/local/bin`` or ``usr/bin``;
- a CPython uv installed for the architecture (``uv python install cpython-3.12-linux-aarch64-gnu``),
  with the C library of one of those roots.

``emulated_python`` is the one function to call; ``_interpreters.runtime_python`` calls it for the invoke,
the profile and the slimming proof.
"""

from __future__ import annotations

import os
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ._lambda import ARCHITECTURES, HOST_MACHINES

# Per Lambda architecture: the dynamic loader.
_LOADER = {"x86_64": "lib64/ld-linux-x86-64.so.2", "arm64": "lib/ld-linux-aarch64.so.1"}


def host_architecture() -> str:
    """This machine's architecture as Lambda names them: ``x86_64`` or ``arm64``."""
    return HOST_MACHINES.get(platform.machine().lower(), platform.machine())


@dataclass(frozen=True)
class Emulated:
    """How to start a Python of another architecture: ``argv`` runs it (qemu and its library root first)."""

    argv: tuple[str, ...]
    python: Path  # the interpreter
    root: Path  # where its C library comes from (qemu's -L)

    def __str__(self) -> str:
        return f"{self.python} under {Path(self.argv[0]).name} (libraries from {self.root})"


@dataclass(frozen=True)
class NotEmulated:
    """Why this machine can't run that Python, and exactly what would make it work."""

    reason: str
    fix: str

    def __str__(self) -> str:
        return f"{self.reason}; to run it here: {self.fix}"


def emulated_python(architecture: str, version: str) -> Emulated | NotEmulated:
    """A Python ``version`` ("3.12") of Lambda ``architecture`` ("arm64") run under qemu-user on this machine."""
    host = host_architecture()
    known = ARCHITECTURES.get(architecture)
    if known is None or platform.system() != "Linux":
        return NotEmulated(
            f"{architecture} code can't be emulated on {platform.system()} {host} by cdk-uv",
            f"run it on a Linux {architecture} machine, or as an image function in a container engine that emulates",
        )
    gnu = known.machine
    qemu = shutil.which(f"qemu-{gnu}-static") or shutil.which(f"qemu-{gnu}")
    roots = [root for root in _roots(architecture) if (root / _LOADER[architecture]).exists()]
    interpreters = [
        (root, python)
        for root in roots
        for python in [*_in_root(root, version), *_uv_installed(gnu, version)]
        if elf_machine(python) == known.elf_machine
    ]
    if qemu and interpreters:
        root, python = interpreters[0]
        return Emulated((qemu, "-L", str(root), str(python)), python, root)
    lacking, fixes = [], []
    if not qemu:
        lacking.append("qemu-user")
        fixes.append("install qemu-user (Debian/Ubuntu: `apt-get install qemu-user-static`)")
    if not interpreters:
        lacking.append(f"{gnu} CPython {version}")
        fixes.append(
            f"set $QEMU_LD_PREFIX to an {architecture} root filesystem holding python{version} (in var/lang/bin, "
            f"usr/local/bin or usr/bin; a Lambda base image, public.ecr.aws/lambda/python:{version}-{architecture}, "
            f"exported with `docker export` is one), or install one with uv (`uv python install "
            f"cpython-{version}-linux-{gnu}-gnu`) beside the {gnu} C library (Debian/Ubuntu: `apt-get install "
            f"libc6-{_DEBIAN_ARCH[architecture]}-cross`)"
        )
    return NotEmulated(
        f"{architecture} native code runs on this {host} machine only under qemu-user emulation, and it has no "
        + " and no ".join(lacking),
        "; ".join(fixes),
    )


_DEBIAN_ARCH = {"x86_64": "amd64", "arm64": "arm64"}


def _roots(architecture: str) -> list[Path]:
    gnu = ARCHITECTURES[architecture].machine
    given = os.environ.get("QEMU_LD_PREFIX")
    places = [Path(given)] if given else []
    return [*places, Path("/etc/qemu-binfmt") / gnu, Path(f"/usr/{gnu}-linux-gnu"), Path("/")]


def _in_root(root: Path, version: str) -> list[Path]:
    return [root / folder / f"python{version}" for folder in ("var/lang/bin", "usr/local/bin", "usr/bin")]


def _uv_installed(gnu: str, version: str) -> list[Path]:
    """CPythons uv installed for ``gnu`` (where ``uv python dir`` says, without running uv)."""
    given = os.environ.get("UV_PYTHON_INSTALL_DIR")
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    folder = Path(given) if given else Path(data) / "uv" / "python"
    try:
        installs = sorted(folder.glob(f"cpython-{version}.*-linux-{gnu}-gnu"), reverse=True)
    except OSError:
        return []
    return [install / "bin" / f"python{version}" for install in installs]


def elf_machine(path: Path) -> int | None:
    """The ELF machine (``e_machine``) of a 64-bit shared object or executable (following links); None for
    any other file."""
    try:
        with path.open("rb") as file:
            header = file.read(20)
    except OSError:
        return None
    if len(header) < 20 or header[:4] != b"\x7fELF" or header[4] != 2:
        return None
    order: Literal["little", "big"] = "little" if header[5] == 1 else "big"
    if int.from_bytes(header[16:18], order) not in (2, 3):  # ET_EXEC, ET_DYN
        return None
    return int.from_bytes(header[18:20], order)
