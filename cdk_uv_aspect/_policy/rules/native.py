"""uv-native-libs: native libraries in the asset are Linux ELF for the function's architecture and Python."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..._lambda import ARCHITECTURES
from ..facts import FunctionFacts
from ..options import PolicyOptions
from ..rule import Compliant, NonCompliant, NotApplicable, Rule, Verdict

# ELF e_machine values (System V ABI): the two Lambda architectures, and what is mistaken for them.
_MACHINES = {62: "x86_64", 183: "aarch64", 3: "i386", 40: "arm", 20: "ppc", 21: "ppc64", 22: "s390x"}
# CPython extension suffixes: .cpython-312-x86_64-linux-gnu.so; abi3 and untagged .so load on any 3.x.
_EXTENSION = re.compile(
    r"\.cpython-(?P<ver>3\d+)(?P<flags>[a-z]*)-(?P<machine>[a-z0-9_]+)-(?P<os>[a-z]+)"
    r"(?:-(?P<libc>[a-z]+))?\.so$"
)
_SHOWN = 5


def check(facts: FunctionFacts, options: PolicyOptions) -> Verdict:
    if facts.python is None:
        return NotApplicable(f"runtime {facts.runtime or 'unknown'} is not Python")
    if facts.asset_dir is None:
        return NotApplicable("no uv-built asset to inspect")
    architecture = ARCHITECTURES.get(facts.architecture)
    if architecture is None:
        return NotApplicable(f"unknown architecture {facts.architecture!r}")
    machine = architecture.machine
    version = facts.python.replace(".", "")
    problems: list[str] = []
    count = 0
    for path in _native_files(facts.asset_dir):
        count += 1
        rel = path.relative_to(facts.asset_dir).as_posix()
        problem = _elf_problem(path, machine) or _suffix_problem(path.name, version, machine)
        if problem:
            problems.append(f"{rel}: {problem}")
    if problems:
        shown = "; ".join(problems[:_SHOWN])
        more = f" (and {len(problems) - _SHOWN} more)" if len(problems) > _SHOWN else ""
        return NonCompliant(
            f"{len(problems)} native libraries will not load on {facts.runtime} {facts.architecture}: {shown}{more}"
        )
    return Compliant(f"{count} native libraries, all Linux {machine}" if count else "no native libraries")


def _native_files(root: Path) -> list[Path]:
    found = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if name.endswith((".so", ".pyd", ".dylib")) or ".so." in name:
                found.append(Path(dirpath, name))
    return sorted(found)


def _elf_problem(path: Path, machine: str) -> str | None:
    with path.open("rb") as f:
        header = f.read(20)
    if header[:4] != b"\x7fELF":
        return "not a Linux (ELF) library" + (" (a Mach-O file: built for macOS)" if header[:4] in _MACHO else "")
    if len(header) < 20:
        return "a truncated ELF header"
    e_machine = int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")
    found = _MACHINES.get(e_machine, f"e_machine {e_machine}")
    return None if found == machine else f"built for {found}, the function runs {machine}"


_MACHO = {
    b"\xcf\xfa\xed\xfe",
    b"\xce\xfa\xed\xfe",
    b"\xfe\xed\xfa\xcf",
    b"\xfe\xed\xfa\xce",
    b"\xca\xfe\xba\xbe",
}  # Mach-O 64/32-bit both byte orders, and fat binaries


def _suffix_problem(name: str, version: str, machine: str) -> str | None:
    match = _EXTENSION.search(name)
    if match is None:
        return None
    if match["ver"] != version:
        built, runs = f"{match['ver'][0]}.{match['ver'][1:]}", f"{version[0]}.{version[1:]}"
        return f"an extension for CPython {built}, the function runs {runs}"
    if match["flags"]:
        return f"an extension for a CPython build with ABI flags {match['flags']!r} (e.g. free-threaded)"
    if match["os"] != "linux" or (match["libc"] or "gnu") != "gnu":
        return f"an extension for {match['os']}-{match['libc']}, Lambda runs linux-gnu"
    if match["machine"] != machine:
        return f"an extension tagged {match['machine']}, the function runs {machine}"
    return None


RULE = Rule(
    id="uv-native-libs",
    severity="error",
    title="Native libraries match the architecture and Python",
    explanation="Every native library in the asset (.so) is a Linux ELF file for the function's "
    "architecture (read from its ELF header), and every CPython extension is for the runtime's Python "
    "version (from its file name: cpython-312-x86_64-linux-gnu or abi3). A mismatch loads on this "
    "machine and fails on Lambda with an ImportError.",
    fix="rebuild through the bundling aspect, which installs wheels for the function's platform; if the "
    "file comes from the package's own tree, remove it or exclude it (UvOptions(exclude=[...])); or "
    "give the function the architecture and runtime the wheels were built for",
    check=check,
)
