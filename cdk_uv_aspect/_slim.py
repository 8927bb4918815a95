"""Slimming (``UvOptions(slim=...)``): an asset folder made smaller, then proven to import as it did.

A step of its own, after the build: it derives a slimmed folder from a finished one (a function's build,
its code and its dependencies layer, a layer's folder) into the build cache (``_derive.derived``), keyed
by the content it starts from, the mode, and the strip tool with its version. The same input gives the
same bytes; a warm synth only checks the entry. Its parts, in order:

- the plan (``_slimplan``): third-party test suites and files no import reads left out, native code to
  strip, and with ``slim="bytecode-only"`` third-party modules shipped as ``.pyc`` alone, placed where the
  source was (the "legacy" placement: Python imports a ``.pyc`` without its source from there, never from
  ``__pycache__``), compiled as before for where Lambda puts the folder;
- the copy: left-out files not copied, every other file linked from the build's entry (never written
  again), native code copied to be stripped (``_strip``); RECORD files list what is left;
- the proof (``_proof``): every top-level module imported from the slimmed folder by the runtime's Python,
  and the build refused where slimming broke one.

``measure`` says what slimming would give, without slimming (the ``uv-size`` rule).
"""

from __future__ import annotations

import csv
import io
import os
import posixpath
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import _cache
from ._build import Built
from ._derive import derived, third_party_files
from ._errors import MarkerError
from ._lambda import LAYER_FOLDER
from ._names import normalize
from ._options import UvOptions
from ._proof import prove
from ._request import BuildRequest
from ._runner import Bounded, Runner
from ._slimplan import Mode, Plan, files_of, plan, pycache_of
from ._strip import Strip, strip, strip_tool
from ._target import Target

Log = Callable[[str], None]


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
        "mode": slimming.mode,
        "layer": slimming.layer,
        "strip": [Path(tool.path).name, tool.version] if isinstance(tool, Strip) else None,
    }
    made: dict[str, Any] = {}

    def fill(folder: Path) -> dict[str, Any]:
        if isinstance(tool, str) and log:
            log(f"cdk-uv-aspect: warning: {tool}")
        source = built.asset_dir / LAYER_FOLDER if slimming.layer else built.asset_dir
        site = folder / LAYER_FOLDER if slimming.layer else folder
        done = plan(source, request.workspace.packages, request.target, slimming.mode)
        _copy(built.asset_dir, folder, done, LAYER_FOLDER if slimming.layer else "")
        stripped, unstripped = strip(site, source, done.native, tool, runner) if isinstance(tool, Strip) else ({}, {})
        _rewrite_records(site, done)
        proof = prove(built, source, site, done, stripped, slimming.beside, runner)
        made["slim"] = {
            "mode": slimming.mode,
            "bytesBefore": built.info.get("bytes"),
            "bytes": sum(st.st_size for _, st, _ in _cache.walk(folder) if not stat.S_ISLNK(st.st_mode)),
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
        made["changed"] = bool(done.removed or done.sources or done.native)
        return {"slim": made["slim"]}

    result = derived(built, "slim", parts, fill)
    if log and made.get("changed"):
        log(summary(request, made["slim"]))
    return result


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
            stripped, _ = strip(Path(tmp), site, done.native, tool, runner)
            debug = sum(before - after for before, after in stripped.values())
    tests, unreachable, sources = (_bytes(site, rels) for rels in (done.tests, done.unreachable, done.sources))
    third = third_party_files(site, {normalize(name) for name in local})
    third |= {pycache_of(rel, f"cpython-{target.python.replace('.', '')}") for rel in third if rel.endswith(".py")}
    slim = total - tests - unreachable - debug
    return Measured(
        total, slim, slim - sources, tests, unreachable, debug, sources, _bytes(site, third & files_of(site))
    )
