"""The proof of a slimmed folder: what slimming may have broken, imported with the runtime's Python.

Every top-level module of every third-party distribution, and of every other distribution slimming
changed, is imported from the slimmed folder (with the folders Lambda puts beside it, a function's
dependencies layer) by the runtime's Python, in a fresh isolated interpreter that writes nothing. A module
that fails is imported from the folder before slimming: if it imports there, slimming broke it and the
build is refused, naming the module, its distribution and what slimming took from it. Where no interpreter
of the target's architecture and Python runs here, the folder is not proven, and the build and ``cdk-uv
report`` say so.
"""

from __future__ import annotations

import csv
import io
import json
import os
import posixpath
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ._build import Built
from ._emulation import NotEmulated, host_architecture
from ._errors import SlimError
from ._interpreters import runtime_python
from ._names import normalize
from ._runner import Runner
from ._slimplan import TEST_FOLDERS, Plan
from ._target import Target
from ._uv import Uv

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
    architecture), or why none can."""
    python = runtime_python(target.python, target.arch, uv, runner)
    if isinstance(python, NotEmulated):
        return f"{python.reason}, so what was slimmed is not proven to import here (to prove it: {python.fix})"
    if python is None:
        return f"no Python {target.python} was found on this machine, so what was slimmed is not proven to import here"
    return python


def prove(
    built: Built,
    source: Path,
    site: Path,
    done: Plan,
    stripped: dict[str, tuple[int, int]],
    beside: Sequence[Path],
    runner: Runner,
) -> dict[str, Any]:
    """Import what slimming ``source`` into ``site`` (as ``done`` says, ``stripped`` too) may have broken,
    with ``beside`` after it on the path; refuse the build when slimming broke one.

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
