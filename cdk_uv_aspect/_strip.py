"""Stripping: the debug symbols of native libraries and executables removed, with a tool that handles the
target's architecture, and never where the loader would then refuse the file.

The tool (``strip_tool``): ``llvm-strip`` (any architecture), else ``<machine>-linux-gnu-strip``, else the
machine's ``strip`` when it is of the target's architecture; with none, nothing is stripped and the build
says so. Its version is part of a slimmed folder's key. A file the tool refuses, or whose load segments
stripping would misalign (``strip``), ships as it was.
"""

from __future__ import annotations

import os
import shutil
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from . import _state
from ._emulation import host_architecture
from ._lambda import ARCHITECTURES
from ._runner import Runner

_BATCH = 64  # files per strip command


@dataclass(frozen=True)
class Strip:
    """A strip tool that handles the target's architecture, and the version it says (part of the key)."""

    path: str
    version: str

    def __str__(self) -> str:
        return f"{Path(self.path).name} ({self.version})"


def strip_tool(arch: str, runner: Runner) -> Strip | str:
    """The strip tool for ``arch``'s native code, or why there is none (with what to install)."""
    key = ("strip", arch)
    with _state.LOCK:
        if key in _state.TOOLS:
            found: Strip | str = _state.TOOLS[key]
            return found
    machine = ARCHITECTURES[arch].machine
    candidates = ["llvm-strip", *_versioned("llvm-strip-"), f"{machine}-linux-gnu-strip"]
    if host_architecture() == arch:
        candidates.append("strip")  # the machine's own binutils handle its own architecture
    result: Strip | str = (
        f"no strip tool for {arch} native code was found (tried {', '.join(dict.fromkeys(candidates))}): "
        "native libraries keep their debug symbols; install one (Debian/Ubuntu: `apt-get install llvm`, or "
        f"`apt-get install binutils-{machine.replace('_', '-')}-linux-gnu`)"
    )
    for name in dict.fromkeys(candidates):
        path = shutil.which(name)
        if path is None:
            continue
        answer = runner.run([path, "--version"], timeout=60)
        lines = [line.strip() for line in answer.stdout.splitlines() if line.strip()]
        said = [line for line in lines if "version" in line.lower()] or lines  # LLVM's, or binutils' first line
        if answer.ok and said:
            result = Strip(path, said[0])
            break
    with _state.LOCK:
        _state.TOOLS[key] = result
    return result


def _versioned(prefix: str) -> list[str]:
    """``llvm-strip-18``, ``llvm-strip-14``...: the versioned names on PATH, newest first."""
    names: set[str] = set()
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        try:
            names.update(n for n in os.listdir(folder or ".") if n.startswith(prefix) and n[len(prefix) :].isdigit())
        except OSError:
            continue
    return sorted(names, key=lambda n: -int(n[len(prefix) :]))


def strip(
    site: Path, source: Path, native: Sequence[str], tool: Strip, runner: Runner
) -> tuple[dict[str, tuple[int, int]], dict[str, str]]:
    """Strip the debug symbols of ``native`` files of ``site`` (copies of ``source``'s) in place; ``rel ->
    (bytes before, after)`` of those stripped. A file the tool can't strip, or whose load segments stripping
    would leave misaligned (strip tools repack libraries that patchelf extended, as auditwheel does: the
    loader then refuses them, "ELF load command address/offset not page-aligned"), ships as it was; the log
    says so. Returns those stripped, and those left as they were with why."""
    refused: dict[str, str] = {}
    for start in range(0, len(native), _BATCH):
        batch = list(native[start : start + _BATCH])
        result = runner.run([tool.path, "--strip-debug", *(str(site / rel) for rel in batch)], cwd=site)
        if result.ok:
            continue
        for rel in batch:  # one by one: which file the tool refused, the others stripped all the same
            shutil.copyfile(source / rel, site / rel)
            single = runner.run([tool.path, "--strip-debug", str(site / rel)], cwd=site)
            if not single.ok:
                refused[rel] = (single.stderr.strip().splitlines() or ["failed"])[-1]
    for rel in native:
        if rel not in refused and _misaligned(site / rel) > _misaligned(source / rel):
            refused[rel] = "stripping would misalign its load segments (a library patchelf extended)"
    for rel in refused:
        shutil.copyfile(source / rel, site / rel)
    sizes = {rel: ((source / rel).stat().st_size, (site / rel).stat().st_size) for rel in native if rel not in refused}
    return {rel: (before, after) for rel, (before, after) in sizes.items() if before != after}, refused


def _misaligned(path: Path) -> int:
    """How many load segments of an ELF file break the rule the loader checks: an offset in the file
    congruent to the address it is loaded at, modulo the segment's alignment and the 4 KiB page."""
    with path.open("rb") as file:
        header = file.read(64)
        order: Literal["<", ">"] = "<" if header[5] == 1 else ">"
        (phoff,) = struct.unpack_from(order + "Q", header, 32)
        phentsize, phnum = struct.unpack_from(order + "HH", header, 54)
        file.seek(phoff)
        table = file.read(phentsize * phnum)
    count = 0
    for i in range(phnum):
        if (i + 1) * phentsize > len(table) or phentsize < 56:
            return int(phnum)  # truncated: as bad as can be
        kind, _, offset, vaddr, _, _, _, align = struct.unpack_from(order + "IIQQQQQQ", table, i * phentsize)
        if kind == 1 and any(m > 1 and (vaddr - offset) % m for m in (align, 4096)):
            count += 1
    return count
