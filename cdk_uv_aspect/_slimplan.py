"""What slimming does to a folder of installed distributions: the plan, made before any file is touched.

- third-party **test suites**: folders named ``tests`` or ``test`` in a third-party distribution (below its
  packages, or at the top level, where some wheels put one), and its ``conftest.py`` files, left out;
- third-party **files no import reads**: type stubs (``.pyi``, ``py.typed``), C, C++ and Cython sources and
  headers, static libraries and object files, left out;
- the **native code** of the target's machine (the workspace's own too): its debug symbols to strip
  (``_strip``);
- ``slim="bytecode-only"``: the **sources** of third-party modules, each replaced by its ``.pyc``.

The workspace's own distributions keep their tests and sources.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from . import _cache
from ._derive import third_party_files
from ._emulation import elf_machine
from ._lambda import ARCHITECTURES
from ._names import normalize
from ._target import Target

Mode = Literal["slim", "bytecode-only"]

TEST_FOLDERS = frozenset({"tests", "test"})
UNREACHABLE = (".pyi", ".pxd", ".pyx", ".pxi", ".c", ".h", ".cc", ".cpp", ".cxx", ".hh", ".hpp", ".a", ".o")
"""Suffixes of third-party files no import reads: stubs, C/C++/Cython sources and headers, static objects."""
_UNREACHABLE_NAMES = frozenset({"py.typed", "conftest.py"})


@dataclass
class Plan:
    """What slimming does to one folder (relative paths, '/'-separated)."""

    tests: set[str] = field(default_factory=set)  # third-party test suites' files
    unreachable: set[str] = field(default_factory=set)  # third-party files no import reads
    native: list[str] = field(default_factory=list)  # native code of the target's machine: stripped
    sources: dict[str, str] = field(default_factory=dict)  # bytecode-only: a module's .py -> its __pycache__ .pyc

    @property
    def removed(self) -> set[str]:
        return self.tests | self.unreachable


def plan(site: Path, local: Iterable[str], target: Target, mode: Mode) -> Plan:
    """What slimming ``site`` (a folder of installed distributions) for ``target`` does; ``local`` are the
    workspace's own distributions, whose files keep their tests and sources."""
    third = third_party_files(site, {normalize(name) for name in local})
    files = files_of(site)
    tag = f"cpython-{target.python.replace('.', '')}"
    done = Plan()
    for rel in sorted(third):
        parts = rel.split("/")
        if parts[0].endswith((".dist-info", ".data")):
            continue
        if any(part in TEST_FOLDERS for part in parts[:-1]):  # a top-level tests/ too: some wheels ship one
            done.tests.add(rel)
        elif len(parts) > 1 and (parts[-1] in _UNREACHABLE_NAMES or parts[-1].endswith(UNREACHABLE)):
            done.unreachable.add(rel)
        elif mode == "bytecode-only" and rel.endswith(".py"):
            cached = pycache_of(rel, tag)
            if cached in files:
                done.sources[rel] = cached
    for rel in list(done.removed):  # a removed module's bytecode goes with it
        cached = pycache_of(rel, tag)
        if rel.endswith(".py") and cached in files:
            (done.tests if rel in done.tests else done.unreachable).add(cached)
    machine = ARCHITECTURES[target.arch].elf_machine
    done.native = [rel for rel in files if rel not in done.removed and elf_machine(site / rel) == machine]
    return done


def pycache_of(rel: str, tag: str) -> str:
    """``a/__pycache__/b.cpython-312.pyc`` for ``a/b.py``."""
    folder, name = posixpath.split(rel)
    return posixpath.join(folder, "__pycache__", f"{name[:-3]}.{tag}.pyc")


def files_of(site: Path) -> set[str]:
    """Every file and link below ``site``, as '/'-separated relative paths."""
    return {rel for rel, _, _ in _cache.walk(site)} if site.is_dir() else set()
