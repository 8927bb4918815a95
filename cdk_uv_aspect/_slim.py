"""Slimming (``UvOptions(slim=...)``): an asset folder made smaller, then proven to import as it did.

A step of its own, after the build: it derives a slimmed folder from a finished one (a function's build,
its code and its dependencies layer, a layer's folder) into the build cache, keyed by the content it
starts from, the mode, and the strip tool with its version. The same input gives the same bytes; a warm
synth only checks the entry.

What slimming leaves out or changes:

- third-party **test suites**: folders named ``tests`` or ``test`` in a third-party distribution (below its
  packages, or at the top level, where some wheels put one), and its ``conftest.py`` files;
- third-party **files no import reads**: type stubs (``.pyi``, ``py.typed``), C, C++ and Cython sources and
  headers, static libraries and object files;
- the **debug symbols** of every native library and executable of the target's machine (the workspace's
  own too), with a strip tool that handles the target's architecture: ``llvm-strip`` (any), else
  ``<machine>-linux-gnu-strip``, else the machine's ``strip`` when it is of the target's architecture. With
  none, nothing is stripped and the build says so;
- ``slim="bytecode-only"``: third-party modules ship as ``.pyc`` alone, placed where the source was (the
  "legacy" placement: Python imports a ``.pyc`` without its source from there, never from ``__pycache__``),
  compiled as before for where Lambda puts the folder. The workspace's own modules keep their sources.

RECORD files list what is left. Then the **proof**: every top-level module of every third-party
distribution, and of every other distribution slimming changed, is imported from the slimmed folder (with
the folders Lambda puts beside it, a function's dependencies layer) by the runtime's Python, in a fresh
isolated interpreter that writes nothing. A module that fails is imported from the folder before slimming:
if it imports there, slimming broke it and the build is refused, naming the module, its distribution and
what slimming took from it. Where no interpreter of the target's architecture and Python runs here, the
folder is not proven, and the build and ``cdk-uv report`` say so.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import posixpath
import shutil
import struct
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from . import _asset, _cache, _sbom, _state
from ._build import Built
from ._derive import content_digest, third_party_files
from ._emulation import Emulated, emulated_python, host_architecture
from ._errors import MarkerError, SlimError
from ._files import work_dir
from ._interpreters import find_python
from ._lambda import ARCHITECTURES, LAYER_FOLDER
from ._names import normalize
from ._options import UvOptions
from ._request import BuildRequest
from ._runner import Bounded, Runner
from ._target import Target
from ._uv import Uv
from ._version import LIBRARY_VERSION

Mode = Literal["slim", "bytecode-only"]
Log = Callable[[str], None]

TEST_FOLDERS = frozenset({"tests", "test"})
UNREACHABLE = (".pyi", ".pxd", ".pyx", ".pxi", ".c", ".h", ".cc", ".cpp", ".cxx", ".hh", ".hpp", ".a", ".o")
"""Suffixes of third-party files no import reads: stubs, C/C++/Cython sources and headers, static objects."""
_UNREACHABLE_NAMES = frozenset({"py.typed", "conftest.py"})

# The ELF e_machine of each Lambda architecture, and the GNU triplet's first part.
ELF_MACHINES = {"x86_64": 62, "arm64": 183}
_STRIP_BATCH = 64  # files per strip command


def wanted(marked: bool | str | None, options: UvOptions) -> Mode | None:
    """The slimming a function or layer asks for: its marker's ``slim`` (``marked``), else the options'."""
    value = options.slim if marked is None else marked
    if value == "bytecode-only" and not options.bytecode:
        raise MarkerError(
            "the uv marker asks for slim='bytecode-only', which ships compiled modules, and "
            "UvOptions(bytecode=False) compiles none",
            fix='mark it with {"slim": true} instead, or build with bytecode (UvOptions(bytecode=True))',
        )
    return "bytecode-only" if value == "bytecode-only" else "slim" if value is True else None


# --- the strip tool -----------------------------------------------------------------------------------


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


def native_machine(path: Path) -> int | None:
    """The ELF machine of a 64-bit shared object or executable; None for any other file."""
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


# --- what slimming does to a folder ---------------------------------------------------------------


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
    files = _files(site)
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
            cached = _cached(rel, tag)
            if cached in files:
                done.sources[rel] = cached
    for rel in list(done.removed):  # a removed module's bytecode goes with it
        cached = _cached(rel, tag)
        if rel.endswith(".py") and cached in files:
            (done.tests if rel in done.tests else done.unreachable).add(cached)
    machine = ELF_MACHINES[target.arch]
    done.native = [rel for rel in files if rel not in done.removed and native_machine(site / rel) == machine]
    return done


def _cached(rel: str, tag: str) -> str:
    """``a/__pycache__/b.cpython-312.pyc`` for ``a/b.py``."""
    folder, name = posixpath.split(rel)
    return posixpath.join(folder, "__pycache__", f"{name[:-3]}.{tag}.pyc")


def _files(site: Path) -> set[str]:
    return {rel for rel, _, _ in _cache.walk(site)} if site.is_dir() else set()


# --- the slimmed folder, as an entry of the build cache --------------------------------------------


@dataclass(frozen=True)
class Slimming:
    """What a slim asks for: the mode, the folder's layout, and the folders Lambda puts beside it."""

    mode: Mode
    layer: bool = False  # the folder is a layer's: its distributions are below python/
    beside: tuple[Path, ...] = ()  # folders Lambda puts on the path after it: a function's dependencies layer


def slimmed(built: Built, slimming: Slimming, runner: Runner, log: Log | None = None) -> Built:
    """``built``'s folder slimmed and proven, from the build cache when an intact entry is there."""
    request = built.request
    runner = Bounded(runner, request.options.command_timeout, what=f"{request.package} ({request.target.key})", say=log)
    tool = strip_tool(request.target.arch, runner)
    parts = {
        "library": LIBRARY_VERSION,
        "kind": "slim",
        "mode": slimming.mode,
        "from": content_digest(built),
        "layer": slimming.layer,
        "strip": [Path(tool.path).name, tool.version] if isinstance(tool, Strip) else None,
    }
    key = _cache.entry_key(f"{request.package}-{request.target.key}-slim", parts)
    builds = _cache.private_dir(request.options.cache_dir / _cache.BUILDS)
    final = builds / key
    if not request.options.rebuild:
        info = _cache.use(final)
        if info is not None:
            return Built(request, final, built.seconds, cached=built.cached, info=info)
    if isinstance(tool, str) and log:
        log(f"cdk-uv-aspect: warning: {tool}")
    with work_dir(builds, key) as work:
        folder = work / _cache.ASSET
        source = built.asset_dir / LAYER_FOLDER if slimming.layer else built.asset_dir
        site = folder / LAYER_FOLDER if slimming.layer else folder
        done = plan(source, request.workspace.packages, request.target, slimming.mode)
        _copy(built.asset_dir, folder, done, LAYER_FOLDER if slimming.layer else "")
        stripped, unstripped = _strip(site, source, done.native, tool, runner) if isinstance(tool, Strip) else ({}, {})
        _rewrite_records(site, done)
        _asset.normalize_modes(folder)  # the same modes whatever the umask, as every build's
        proof = _prove(built, slimming, source, site, done, stripped, runner)
        files = _cache.manifest(folder)
        size = sum(max(s, 0) for s, _, _ in files.values())
        slim_info = {
            "mode": slimming.mode,
            "bytesBefore": built.info.get("bytes"),
            "bytes": size,
            "removed": {
                "tests": _bytes(source, done.tests),
                "unreachable": _bytes(source, done.unreachable),
                "sources": _bytes(source, done.sources),
                "debugSymbols": sum(before - after for before, after in stripped.values()),
            },
            "strip": str(tool) if isinstance(tool, Strip) else None,
            "native": len(done.native),
            "stripped": len(stripped),
            "unstripped": len(unstripped),  # kept as they were: the tool refused them, or they would misalign
            **proof,
        }
        shutil.copyfile(built.sbom, work / _sbom.FILE)
        info = {
            **{k: v for k, v in built.info.items() if k not in ("manifest", "slim")},
            # From the build it was derived from, through a split: the build a function records (cdk-uv verify).
            "derived": {"kind": "slim", "from": (built.info.get("derived") or {}).get("from") or built.entry.name},
            "beside": {_sbom.FILE: hashlib.sha256(built.sbom.read_bytes()).hexdigest()},
            "files": len(files),
            "bytes": size,
            "slim": slim_info,
            "manifest": files,
        }
        _cache.write_info(work, info)
        final = _cache.publish(work, final, rebuild=request.options.rebuild)
    if log and (done.removed or done.sources or done.native):
        log(summary(request, slim_info))
    return Built(request, final, built.seconds, cached=False, info=_cache.read_info(final) or info)


def summary(request: BuildRequest, slim: dict[str, Any]) -> str:
    """``Slimmed uv package frames (python3.12-x86_64): 68.2 MB -> 52.1 MB (...); 3 top-level modules import
    (python3.12 x86_64)``: what a build's log says of a slimmed folder it made."""
    removed = slim.get("removed") or {}
    parts = [
        f"{what} {removed.get(key, 0) / 1e6:.1f} MB"
        for what, key in (("test suites", "tests"), ("unread files", "unreachable"), ("sources", "sources"))
        if removed.get(key)
    ]
    if slim.get("native"):
        parts.append(
            f"debug symbols of {slim.get('stripped', 0)} of {slim['native']} native files "
            f"{removed.get('debugSymbols', 0) / 1e6:.1f} MB"
        )
    before, after = (slim.get(key) or 0 for key in ("bytesBefore", "bytes"))
    line = f"Slimmed uv package {request.package} ({request.target.key}): {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB"
    line += f" ({', '.join(parts)})" if parts else ""
    if slim.get("proven"):
        return f"{line}; {slim['modules']} top-level module(s) import ({slim['proven']})"
    if slim.get("unproven"):
        return f"{line}; cdk-uv-aspect: warning: not proven: {slim['unproven']}"
    return line


def _copy(source: Path, dest: Path, done: Plan, prefix: str) -> None:
    """``source`` into ``dest`` as slimming wants it: left-out files not copied, native code copied (to be
    stripped in place), bytecode-only modules' .pyc at their sources' place, every other file linked."""
    under = f"{prefix}/" if prefix else ""
    legacy = {cached: rel[:-3] + ".pyc" for rel, cached in done.sources.items()}
    native = set(done.native)
    for rel, _, path in sorted(_cache.walk(source)):
        inner = rel.removeprefix(under) if rel.startswith(under) else None
        if inner is not None and (inner in done.removed or inner in done.sources):
            continue
        target = dest / under / legacy[inner] if inner in legacy else dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            os.symlink(os.readlink(path), target)
        elif inner in native:
            shutil.copyfile(path, target)
        else:
            _link(path, target)
    for folder in sorted((p for p in dest.rglob("__pycache__") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()


def _link(source: Path, dest: Path) -> None:
    # The folder slimmed is an entry of the build cache, never written again: its files can be shared.
    try:
        os.link(source, dest)
    except OSError:
        shutil.copy2(source, dest)


def _strip(
    site: Path, source: Path, native: Sequence[str], tool: Strip, runner: Runner
) -> tuple[dict[str, tuple[int, int]], dict[str, str]]:
    """Strip the debug symbols of ``native`` files of ``site`` (copies of ``source``'s) in place; ``rel ->
    (bytes before, after)`` of those stripped. A file the tool can't strip, or whose load segments stripping
    would leave misaligned (strip tools repack libraries that patchelf extended, as auditwheel does: the
    loader then refuses them, "ELF load command address/offset not page-aligned"), ships as it was; the log
    says so. Returns those stripped, and those left as they were with why."""
    refused: dict[str, str] = {}
    for start in range(0, len(native), _STRIP_BATCH):
        batch = list(native[start : start + _STRIP_BATCH])
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


def _rewrite_records(site: Path, done: Plan) -> None:
    """Each RECORD lists what is left: rows of removed files go, a bytecode-only module's row names its .pyc."""
    legacy = {rel: rel[:-3] + ".pyc" for rel in done.sources}
    for record in sorted(site.glob("*.dist-info/RECORD")):
        rows = list(csv.reader(io.StringIO(record.read_text())))
        kept = []
        for row in rows:
            if not row:
                continue
            rel = posixpath.normpath(row[0])
            if rel in legacy:
                kept.append([legacy[rel], "", ""])
            elif rel not in done.removed:
                kept.append(row)
        if kept != rows:
            text = io.StringIO()
            csv.writer(text, lineterminator="\n").writerows(kept)
            record.unlink()  # it may be a link to the build's own RECORD
            record.write_text(text.getvalue())


def _bytes(site: Path, rels: Iterable[str]) -> int:
    return sum((site / rel).lstat().st_size for rel in rels)


# --- the proof --------------------------------------------------------------------------------------

PROBE = r"""
import importlib, json, sys
out, count = sys.argv[1], int(sys.argv[2])
sys.path[0:0] = sys.argv[3:3 + count]
failed = {}
for name in sys.argv[3 + count:]:
    try:
        importlib.import_module(name)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # SystemExit too: a module that exits when imported does not import
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        failed[name] = (type(exc).__name__ + ": " + (lines[-1] if lines else ""))[:400]
with open(out, "w") as f:
    json.dump(failed, f)
"""


def top_level(site: Path) -> dict[str, tuple[str, set[str]]]:
    """Every distribution of ``site``: its normalized name -> (its name and version, its top-level modules).

    From RECORD, as installed: ``a/__init__.py`` is package ``a``, ``b.py`` and ``b.cpython-312-*.so`` are
    module ``b``; a folder without ``__init__`` (a namespace package) is looked into for its packages.
    """
    found: dict[str, tuple[str, set[str]]] = {}
    for dist in sorted(site.glob("*.dist-info")):
        record = dist / "RECORD"
        if not record.is_file():
            continue
        paths = [posixpath.normpath(row[0]) for row in csv.reader(io.StringIO(record.read_text())) if row]
        names = {_module(site, path.split("/")) for path in paths if not path.startswith(("..", "/"))}
        name, _, version = dist.name.removesuffix(".dist-info").partition("-")
        found[normalize(name)] = (f"{name} {version}", {n for n in names if n})
    return found


def _module(site: Path, parts: list[str], depth: int = 0) -> str | None:
    """The top-level module a path installed below ``site`` belongs to (None: not a module's file)."""
    first = parts[0]
    if len(parts) == 1:
        stem = first.split(".", 1)[0]
        is_module = first.endswith((".py", ".pyc", ".so"))
        return stem if is_module and stem.isidentifier() else None
    if not first.isidentifier() or first == "__pycache__":
        return None
    folder = site / first
    if depth < 3 and not any((folder / init).exists() for init in ("__init__.py", "__init__.pyc")):
        inner = _module(folder, parts[1:], depth + 1)  # a namespace package: its packages are imported
        return f"{first}.{inner}" if inner else None
    return first


def _interpreter(target: Target, uv: str, runner: Runner) -> list[str] | str:
    """The command that starts the runtime's Python for ``target`` here (under qemu-user for the other
    architecture, see ``_emulation``), or why none can."""
    if host_architecture() != target.arch:
        emulated = emulated_python(target.arch, target.python)
        if isinstance(emulated, Emulated):
            return list(emulated.argv)
        return f"{emulated.reason}, so what was slimmed is not proven to import here (to prove it: {emulated.fix})"
    python = find_python(uv, target.python, runner)
    if python is None:
        return f"no Python {target.python} was found on this machine, so what was slimmed is not proven to import here"
    return [python]


def _prove(
    built: Built,
    slimming: Slimming,
    source: Path,
    site: Path,
    done: Plan,
    stripped: dict[str, tuple[int, int]],
    runner: Runner,
) -> dict[str, Any]:
    """Import what slimming may have broken from ``site``; refuse the build when slimming broke one.

    The proof's record: ``proven`` (the interpreter, and how many modules imported) or ``unproven`` (why).
    """
    request = built.request
    local = {normalize(name) for name in request.workspace.packages}
    changed = done.removed | set(done.sources) | set(stripped)
    distributions = top_level(source)
    owner: dict[str, str] = {}
    for name, (_, modules) in distributions.items():
        for module in modules:
            owner.setdefault(module, name)
    wanted: set[str] = set()
    for name, (_, modules) in distributions.items():
        if name not in local:
            wanted |= modules
    touched = {_module(source, rel.split("/")) for rel in changed}
    wanted |= {m for m in touched if m}
    wanted -= TEST_FOLDERS & {rel.split("/")[0] for rel in done.tests}  # a top-level test suite left out
    names = sorted(wanted)
    if not names:
        return {"proven": None, "modules": 0}
    uv = Uv.locate(request.options.uv, runner)
    python = _interpreter(request.target, uv.path, runner)
    if isinstance(python, str):
        return {"proven": None, "unproven": python, "modules": len(names)}
    beside = list(slimming.beside)
    failed = _import(python, [site, *beside], names, runner)
    if failed:
        before = _import(python, [source, *beside], sorted(failed), runner)
        broken = {m: why for m, why in failed.items() if m not in before}
        if broken:
            raise _broken(built, broken, owner, distributions, done, stripped)
    how = " under emulation" if host_architecture() != request.target.arch else ""
    return {"proven": f"python{request.target.python} {request.target.arch}{how}", "modules": len(names)}


def _import(python: list[str], path: Sequence[Path], modules: Sequence[str], runner: Runner) -> dict[str, str]:
    """The modules of ``modules`` that fail to import with ``path`` first on sys.path: name -> why."""
    with tempfile.TemporaryDirectory(prefix="cdk-uv-slim-") as tmp:
        out = Path(tmp) / "failed.json"
        # -I: nothing from the environment or the user's site; -S: not the interpreter's site-packages (Lambda's
        # path is the asset, its layers, then the runtime's own); -B: nothing written into the folder.
        args = [*python, "-I", "-S", "-B", "-c", PROBE, str(out), str(len(path)), *map(str, path), *modules]
        env = {"PATH": os.environ.get("PATH", ""), "HOME": tmp, "TMPDIR": tmp, "LANG": "C.UTF-8", "TZ": ":UTC"}
        result = runner.run(args, cwd=Path(tmp), env=env, inherit_env=False)
        try:
            failed: dict[str, str] = json.loads(out.read_text())
        except (OSError, ValueError):
            # The interpreter itself died (a crash in a native library): every module is suspect.
            why = (result.stderr.strip().splitlines() or [f"the interpreter exited with status {result.returncode}"])[
                -1
            ]
            return {module: f"the interpreter stopped: {why}" for module in modules}
    return failed


def _broken(
    built: Built,
    broken: dict[str, str],
    owner: dict[str, str],
    distributions: dict[str, tuple[str, set[str]]],
    done: Plan,
    stripped: dict[str, tuple[int, int]],
) -> SlimError:
    module, why = sorted(broken.items())[0]
    dist = owner.get(module.split(".")[0]) or owner.get(module)
    display = distributions[dist][0] if dist else "no distribution (application modules)"
    lines = [f"  | import {m}: {w}" for m, w in sorted(broken.items())[:10]]
    took = _taken(module, done, stripped)
    if took:
        lines.append(f"  | slimming took from {module}: {took}")
    return SlimError(
        f"slimming would break `import {module}` (distribution {display}): it imports before slimming, and "
        f"fails after it with {why}",
        package=built.request.package,
        target=built.request.target,
        fix=f'turn slimming off for this function (its marker: mark_package(fn, "{built.request.package}", '
        'slim=False), or {"slim": false} in the uv marker\'s data); if an import needs a test suite or a '
        f"stripped library of {display.split()[0]}, tell its maintainers",
        details="\n".join(lines),
    )


def _taken(module: str, done: Plan, stripped: dict[str, tuple[int, int]]) -> str:
    """What slimming took from a module's files: its test suites, unread files, stripped libraries, sources."""
    root = module.replace(".", "/")

    def mine(rels: Iterable[str]) -> list[str]:
        return sorted(r for r in rels if r.startswith((root + "/", root + ".")))

    def shown(rels: list[str]) -> str:
        return ", ".join(rels[:3]) + (f" and {len(rels) - 3} more" if len(rels) > 3 else "")

    suites: dict[str, int] = {}
    for rel in mine(done.tests):
        parts = rel.split("/")
        at = next(i for i, part in enumerate(parts[:-1]) if part in TEST_FOLDERS)
        folder = "/".join(parts[: at + 1]) + "/"
        suites[folder] = suites.get(folder, 0) + 1
    said = [f"test suite {', '.join(f'{f} ({n} files)' for f, n in sorted(suites.items())[:3])}"] if suites else []
    for what, rels in (
        ("files no import reads", mine(done.unreachable)),
        ("debug symbols of", mine(stripped)),
        ("the sources of", mine(done.sources)),
    ):
        if rels:
            said.append(f"{what} {shown(rels)}")
    return "; ".join(said)


# --- what slimming would give, without slimming ------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    """A folder's bytes, and what ``slim=True`` and ``slim="bytecode-only"`` would leave of them."""

    bytes: int
    slim: int
    bytecode_only: int
    tests: int
    unreachable: int
    debug_symbols: int
    sources: int
    third_party: int  # what a dependencies layer would take out of the folder


def measure(site: Path, local: Iterable[str], target: Target, runner: Runner | None = None) -> Measured:
    """What slimming ``site`` would give, measured: the files it would leave out, and what the strip tool
    takes from copies of its native files (none without a strip tool). ``site`` is not changed."""
    runner = runner or Runner()
    done = plan(site, local, target, "bytecode-only")
    total = sum(st.st_size for _, st, path in _cache.walk(site) if not path.is_symlink())
    debug = 0
    tool = strip_tool(target.arch, runner)
    if isinstance(tool, Strip) and done.native:
        with tempfile.TemporaryDirectory(prefix="cdk-uv-measure-") as tmp:
            for rel in done.native:
                (Path(tmp) / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(site / rel, Path(tmp) / rel)
            stripped, _ = _strip(Path(tmp), site, done.native, tool, runner)
            debug = sum(before - after for before, after in stripped.values())
    tests, unreachable, sources = (_bytes(site, rels) for rels in (done.tests, done.unreachable, done.sources))
    third = third_party_files(site, {normalize(name) for name in local})
    third |= {_cached(rel, f"cpython-{target.python.replace('.', '')}") for rel in third if rel.endswith(".py")}
    slim = total - tests - unreachable - debug
    return Measured(total, slim, slim - sources, tests, unreachable, debug, sources, _bytes(site, third & _files(site)))
