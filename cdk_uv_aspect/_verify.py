"""Verify: build again, here, what the caches served a synth, and compare the two byte for byte.

Builds are reproducible (the same sources, lock, target and options give the same bytes on any machine),
so anyone can audit the build cache and the team cache: each build a cloud assembly records is built
again from the workspace into a private, empty cache (never from a cache, never uploaded), and its files
are compared with those of the entry the synth used: the one in the build cache, else the team cache's.
An entry whose files differ was not built from these sources by this library, or its build is not
reproducible; either way it is named.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from . import _cache, _remote
from ._build import build
from ._errors import UvError
from ._options import UvOptions
from ._record import BuildRecord
from ._request import BuildRequest
from ._runner import Runner, cores
from ._target import target_of
from ._workspace import Workspace

Log = Callable[[str], None]


@dataclass
class Checked:
    """One build of the assembly, built again: ``same``, ``differs`` or ``unverified`` (and why)."""

    key: str
    package: str
    target: str
    functions: list[str] = field(default_factory=list)
    verdict: str = "unverified"
    why: str = ""
    differences: list[str] = field(default_factory=list)  # entry-relative paths, with what differs


def builds_of(records: Iterable[tuple[str, BuildRecord]]) -> dict[str, Checked]:
    """The distinct builds of an assembly's ``uv:build`` records ((function path, record) pairs), by key."""
    found: dict[str, Checked] = {}
    for path, record in records:
        if record.key is None:
            continue  # recorded by a version without keys, or a layer's derived folder: nothing to rebuild
        found.setdefault(record.key, Checked(record.key, record.package, record.target)).functions.append(path)
    return found


def verify(
    builds: dict[str, Checked],
    workspace: Workspace,
    options: UvOptions,
    *,
    sample: int | None = None,
    runner: Runner | None = None,
    log: Log | None = None,
) -> list[Checked]:
    """Build each of ``builds`` (or a random ``sample`` of them) again and compare; the verdicts, by key."""
    chosen = sorted(builds)
    if sample is not None and sample < len(chosen):
        chosen = sorted(random.sample(chosen, sample))
    runner = runner or Runner()
    team = _remote.team_cache(options.remote_cache, options.remote_cache_write)
    with tempfile.TemporaryDirectory(prefix="cdk-uv-verify-") as scratch:
        served_dir = _cache.private_dir(Path(scratch) / "served" / _cache.BUILDS)

        def check(key: str) -> Checked:
            checked = builds[key]
            try:
                _check(checked, workspace, options, team, served_dir, Path(scratch) / f"again-{key}", runner, log)
            except UvError as exc:
                checked.verdict, checked.why = "unverified", f"it could not be built here: {exc.problem}"
            return checked

        with ThreadPoolExecutor(max_workers=max(1, min(len(chosen), cores()))) as pool:
            return list(pool.map(check, chosen))


def _check(
    checked: Checked,
    workspace: Workspace,
    options: UvOptions,
    team: _remote.TeamCache | None,
    served_dir: Path,
    scratch: Path,
    runner: Runner,
    log: Log | None,
) -> None:
    served = options.cache_dir / _cache.BUILDS / checked.key
    info = _cache.use(served)
    if info is None and team is not None:
        info = team.fetch(_cache.BUILDS, checked.key, served_dir, log)
        served = served_dir / checked.key
    if info is None:
        checked.why = "neither the build cache nor the team cache has its entry (any more): synthesize again"
        return
    chosen = info.get("options") or {}
    runtime, _, arch = str(info.get("target", "")).partition("-")
    again = UvOptions(
        workspace=workspace.root,
        cache_dir=scratch,
        lock=chosen.get("lock", options.lock),
        exclude=tuple(chosen.get("exclude", ())),
        bytecode=bool(chosen.get("bytecode", True)),
        omit_runtime_provided=bool(chosen.get("omit_runtime_provided", False)),
        uv=options.uv,
        cache_days=None,
        rebuild=False,
    )
    request = BuildRequest.create(
        workspace,
        str(info["package"]),
        target_of(runtime, arch),
        again,
        extras=chosen.get("extras", info.get("extras", ())),
        groups=chosen.get("groups", info.get("groups", ())),
    )
    built = build(request, runner, log, team=False)
    if built.key != checked.key:
        checked.why = (
            f"the workspace's sources or uv.lock are not those of the synth (built here as {built.key}): verify the "
            "checkout the synth ran from"
        )
        return
    checked.differences = compare(served, built.entry)
    checked.verdict = "differs" if checked.differences else "same"
    shutil.rmtree(scratch, ignore_errors=True)


def compare(served: Path, again: Path) -> list[str]:
    """What differs between two entries, file by file: asset/ and the files beside it (not build.json,
    which holds this machine's times), each with its content and whether it is executable."""
    mine, theirs = _files(served), _files(again)
    differences = []
    for rel in sorted(mine.keys() | theirs.keys()):
        if rel not in theirs:
            differences.append(f"{rel}: only in the served entry")
        elif rel not in mine:
            differences.append(f"{rel}: missing from the served entry")
        elif mine[rel][1] != theirs[rel][1]:
            differences.append(f"{rel}: other content")
        elif mine[rel][0] != theirs[rel][0]:
            differences.append(f"{rel}: {'executable' if mine[rel][0] else 'not executable'} in the served entry")
    return differences


def _files(entry: Path) -> dict[str, tuple[bool, str]]:
    found = {}
    for path in sorted(entry.rglob("*")):
        rel = path.relative_to(entry).as_posix()
        st = path.lstat()
        if rel == _cache.INFO or stat.S_ISDIR(st.st_mode):
            continue
        if stat.S_ISLNK(st.st_mode):
            found[rel] = (False, "link:" + str(path.readlink()))
        else:
            found[rel] = (bool(st.st_mode & stat.S_IXUSR), hashlib.sha256(path.read_bytes()).hexdigest())
    return found
