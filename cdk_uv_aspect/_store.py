"""The store: each third-party distribution installed and compiled once per target, shared by every build.

``<cache_dir>/store/<name>-<key>/`` is laid out as a build entry (see ``_cache``): ``asset/`` holds the
files that one locked distribution installs into a Lambda folder (its modules, its ``.dist-info`` with a
pruned RECORD, no scripts) and their bytecode for the target's Python, recorded under ``/var/task``;
``build.json`` holds its manifest, verified before every use (a damaged entry is installed again, never
used), and the files the target's Python could not compile. The key is the locked requirement (name,
version, environment markers and every hash uv.lock records for it: the wheel uv picks among them is
decided by the target), the target, the index it is pinned to, the workspace's uv settings for ``uv pip
install``, whether bytecode is compiled, this library's version and uv's. Entries are published by
rename and pruned like builds.

A build's folder is then assembled from the entries it needs (copies) and its own packages (built and
compiled per build, since they change): the same files, bytes and modes as installing everything into
one folder, because an entry is a distribution's own files and ``.pyc`` files depend only on their
source, its path and the Python. Where that could differ (two distributions writing one file, a
requirement without hashes), ``Refused`` sends the build the old way: everything installed into its
own folder.

Builds running side by side in one process claim the entries they install (``_state.STORE_CLAIMS``):
one installs a distribution, the others wait for it. Two processes may both install one; the first
rename wins, as for builds. With a team cache (``_remote``), a claimed entry is first downloaded from
it, side by side with the others, and a writer uploads the entries it installed.

(Longer than most modules, and one job: an entry's whole life, keyed, installed, split, published and
assembled, in one place, because each step relies on how the others lay the files out.)
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from . import _asset, _cache, _prune, _state, _uv
from ._failure import Failure
from ._files import work_dir
from ._names import normalize
from ._remote import CONNECTIONS, TeamCache
from ._runner import Runner
from ._target import Target
from ._version import LIBRARY_VERSION

STORE = _cache.STORE
Log = Callable[[str], None]


class Refused(Exception):
    """The store can't give this build exactly what installing it into one folder gives: build it that way."""


@dataclass(frozen=True)
class Locked:
    """One locked third-party requirement of ``uv export``: ``pydantic==2.11.3 ; marker`` and its hashes."""

    name: str  # normalized
    requirement: str  # the requirement, whitespace normalized, without hashes and comments
    hashes: tuple[str, ...]  # sorted
    block: str  # as uv exported it, without comments: what is installed

    @classmethod
    def parse(cls, registry: str) -> list[Locked]:
        """The requirements of the registry part of ``uv export`` output (``_uv.split_requirements``)."""
        found = []
        for block in re.split(r"(?<!\\)\n", registry):
            lines = [line for line in block.splitlines() if line.strip() and not line.strip().startswith("#")]
            if not lines:
                continue
            text = " ".join(line.strip().rstrip("\\").strip() for line in lines)
            hashes = tuple(sorted(re.findall(r"--hash=(\S+)", text)))
            requirement = " ".join(re.sub(r"--hash=\S+", "", text).split())
            match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
            if match is None:
                raise Refused(f"a requirement uv exported can't be read: {requirement}")
            found.append(cls(normalize(match.group(1)), requirement, hashes, "\n".join(lines)))
        return found


@dataclass(frozen=True)
class Setting:
    """What else decides an entry's content: the target, the index, uv's settings, bytecode, the tools."""

    target: Target
    index: str | None
    config: str  # the text of the uv settings `uv pip install` reads (_uv.pip_config)
    bytecode: bool
    uv_version: str


def entry_name(locked: Locked, setting: Setting) -> str:
    if not locked.hashes:
        # Only a requirement pinned by the hashes of its files names exactly one content.
        raise Refused(f"{locked.requirement} has no hashes in uv.lock")
    parts = {
        "library": LIBRARY_VERSION,
        "uv": setting.uv_version,
        "requirement": locked.requirement,
        "hashes": list(locked.hashes),
        "target": setting.target.key,
        "index": setting.index,
        "config": setting.config,
        "bytecode": setting.bytecode,
    }
    return _cache.entry_key(f"{locked.name}-{setting.target.key}", parts)


def entries(
    locked: Sequence[Locked],
    setting: Setting,
    *,
    cache_dir: Path,
    uv: str,
    runner: Runner,
    failure: Failure,
    root: Path,
    config_dir: Path | None,
    team: TeamCache | None = None,
    log: Log | None = None,
) -> list[Path]:
    """The store entry of each requirement: found intact, else downloaded from the team cache (``team``),
    else installed now (once, whoever asks first) and shared there."""
    store = _cache.private_dir(cache_dir / STORE)
    _prune.sweep(store)
    wanted = {store / entry_name(item, setting): item for item in locked}
    for _ in range(3):
        missing = [entry for entry in wanted if not _intact(entry)]
        if not missing:
            return list(wanted)
        mine: list[Path] = []
        theirs: list[threading.Event] = []
        done: list[Path] = []  # installed by another build since we looked
        with _state.LOCK:
            for entry in missing:
                claim = _state.STORE_CLAIMS.get(entry)
                if claim is None:
                    _state.STORE_CLAIMS[entry] = threading.Event()
                    mine.append(entry)
                elif claim.is_set():
                    done.append(entry)
                else:
                    theirs.append(claim)
        again = [entry for entry in done if not _intact(entry)]  # its install failed, or it was damaged since
        with _state.LOCK:
            for entry in again:
                claim = _state.STORE_CLAIMS[entry]
                if claim.is_set():
                    _state.STORE_CLAIMS[entry] = threading.Event()
                    mine.append(entry)
                else:
                    theirs.append(claim)
        claimed = list(mine)
        try:
            if mine and team is not None:
                mine = _download(team, mine, store, log)
            if mine:
                _install(
                    [(entry, wanted[entry]) for entry in mine],
                    setting,
                    store=store,
                    uv=uv,
                    runner=runner,
                    failure=failure,
                    root=root,
                    config_dir=config_dir,
                )
        finally:
            for entry in claimed:
                _state.STORE_CLAIMS[entry].set()
        if team is not None:
            _upload(team, [entry for entry in mine if _intact(entry)], log)
        for claim in theirs:
            claim.wait()
    missing = [entry for entry in wanted if not _intact(entry)]
    if missing:  # pragma: no cover - another process keeps replacing them
        raise Refused(f"store entries could not be published: {', '.join(e.name for e in missing)}")
    return list(wanted)


def _download(team: TeamCache, entries: list[Path], store: Path, log: Log | None) -> list[Path]:
    """Fetch ``entries`` from the team cache, side by side (each a small object); those it does not have."""
    with ThreadPoolExecutor(max_workers=min(len(entries), CONNECTIONS)) as pool:
        found = list(pool.map(lambda entry: team.fetch(STORE, entry.name, store, log), entries))
    return [entry for entry, info in zip(entries, found, strict=True) if info is None]


def _upload(team: TeamCache, entries: list[Path], log: Log | None) -> None:
    """Share the entries installed here (writers only; ``store`` does nothing otherwise)."""
    if entries and team.write:
        with ThreadPoolExecutor(max_workers=min(len(entries), CONNECTIONS)) as pool:
            list(pool.map(lambda entry: team.store(STORE, entry, log), entries))


def _intact(entry: Path) -> bool:
    with _state.LOCK:
        if entry in _state.STORE_VERIFIED:
            return True
    if _cache.use(entry) is None:
        return False
    with _state.LOCK:
        _state.STORE_VERIFIED.add(entry)
    return True


def _install(
    wanted: list[tuple[Path, Locked]],
    setting: Setting,
    *,
    store: Path,
    uv: str,
    runner: Runner,
    failure: Failure,
    root: Path,
    config_dir: Path | None,
) -> None:
    """Install ``wanted`` into one folder with one uv call, compile it, and split it into entries."""
    target = setting.target
    with work_dir(store, wanted[0][0].name) as work:
        site = work / _cache.ASSET
        site.mkdir()
        requirements = work / "locked.txt"
        requirements.write_text("\n".join(item.block for _, item in wanted) + "\n")
        command = _uv.install_locked(uv, target, site, requirements, index=setting.index, config=config_dir)
        result = runner.run(command, cwd=root, env=_uv.UV_ENV)
        if not result.ok:
            raise failure.install(result)
        _asset.tidy(site, ())
        uncompiled: list[dict[str, Any]] = []
        if setting.bytecode:
            uncompiled = _asset.compile_folder(site, uv, runner, failure)
        _asset.normalize_modes(site)
        owners = _owners(site, {item.name for _, item in wanted}, target)
        for entry, item in wanted:
            files = sorted(rel for rel, name in owners.items() if name == item.name)
            _publish(entry, item, site, files, [u for u in uncompiled if owners.get(u["file"]) == item.name], target)


def _owners(site: Path, names: set[str], target: Target) -> dict[str, str]:
    """Every file of ``site`` -> the distribution that installed it (by RECORD; bytecode by its source)."""
    owners: dict[str, str] = {}
    for record in site.glob("*.dist-info/RECORD"):
        name = normalize(record.parent.name.removesuffix(".dist-info").rsplit("-", 1)[0])
        if name not in names:
            raise Refused(f"{record.parent.name} was installed, and was not asked for")
        for line in record.read_text().splitlines():
            rel = line.rsplit(",", 2)[0] if line.count(",") >= 2 else line
            if not rel:
                continue
            if owners.setdefault(rel, name) != name:
                raise Refused(f"{rel} is installed by both {owners[rel]} and {name}")
            if rel.endswith(".py"):
                owners.setdefault(bytecode_of(rel, target), name)
    files, folders = tree(site)
    for rel in files:
        if rel not in owners:
            raise Refused(f"{rel} was installed by no distribution's RECORD")
    holding = {rel[:i] for rel in files for i, c in enumerate(rel) if c == "/"}
    for folder in folders:
        if folder not in holding:
            raise Refused(f"the folder {folder} holds no file: no entry would keep it")
    present = set(files)
    return {rel: name for rel, name in owners.items() if rel in present}


def bytecode_of(rel: str, target: Target) -> str:
    """The ``.pyc`` compileall writes for source ``rel`` (``a/b.py``) for the target's Python."""
    folder, _, name = rel.rpartition("/")
    tag = f"cpython-{target.python.replace('.', '')}"
    pyc = f"__pycache__/{name.removesuffix('.py')}.{tag}.pyc"
    return f"{folder}/{pyc}" if folder else pyc


def _publish(entry: Path, item: Locked, site: Path, files: list[str], uncompiled: list[Any], target: Target) -> None:
    with work_dir(entry.parent, entry.name) as work:
        asset = work / _cache.ASSET
        asset.mkdir()
        asset.chmod(0o755)
        for rel in files:
            dest = asset / rel
            _folders(asset, dest.parent)
            os.rename(site / rel, dest)
        info = {
            "package": item.name,
            "requirement": item.requirement,
            "target": target.key,
            "uncompiled": uncompiled,
            "manifest": _cache.manifest(asset),
        }
        _cache.write_info(work, info)
        _cache.publish(work, entry, rebuild=False)


def _folders(root: Path, folder: Path) -> None:
    """Make ``folder`` and the folders between it and ``root`` with the asset's folder mode."""
    missing = []
    while folder != root and not folder.is_dir():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir()
        path.chmod(0o755)


def uncompiled(entries: Iterable[Path]) -> list[dict[str, Any]]:
    """The files of the entries that the target's Python could not compile (ship without bytecode)."""
    found: list[dict[str, Any]] = []
    for entry in entries:
        info = _cache.read_info(entry) or {}
        found += info.get("uncompiled") or []
    return found


def assemble(site: Path, entries: Sequence[Path], exclude: tuple[str, ...], target: Target) -> None:
    """Copy the entries' files into ``site`` (empty), less what ``exclude`` drops, as ``_asset.tidy`` drops it.

    An excluded module takes its bytecode with it (the old way compiled after excluding), and a
    distribution that lost a file has its RECORD pruned again. Two entries writing one file: ``Refused``.
    """
    pruned: list[Path] = []
    for entry in entries:
        asset = entry / _cache.ASSET
        files, folders = tree(asset)
        for folder in folders:  # as an installed wheel leaves them, even when exclude empties them
            if not folder.endswith("__pycache__"):  # made by compiling, only for a module there
                _folders(site, site / folder)
        dropped = {rel for rel in files if not rel.endswith(".pyc") and _excluded(rel, exclude)}
        dropped |= {bytecode_of(rel, target) for rel in dropped if rel.endswith(".py")}
        for rel in files:
            if rel in dropped:
                continue
            dest = site / rel
            if os.path.lexists(dest):
                raise Refused(f"{rel} is in two store entries")
            _folders(site, dest.parent)
            shutil.copy2(asset / rel, dest, follow_symlinks=False)
        if dropped:
            pruned += [site / rel for rel in files if rel.endswith(".dist-info/RECORD") and rel not in dropped]
    for record in pruned:
        _asset.prune_record(record, site)


def _excluded(rel: str, exclude: tuple[str, ...]) -> bool:
    return any(fnmatch(rel, pattern) for pattern in exclude)


def merge(site: Path, own: Path) -> None:
    """Move the build's own files (its local packages, compiled) into ``site``; a clash: ``Refused``."""
    files, folders = tree(own)
    for folder in folders:
        _folders(site, site / folder)
    for rel in files:
        dest = site / rel
        if os.path.lexists(dest):
            raise Refused(f"{rel} is both a third-party file and the workspace's")
        _folders(site, dest.parent)
        os.rename(own / rel, dest)


def tree(folder: Path) -> tuple[list[str], list[str]]:
    """The files (and links) and the folders below ``folder``, as sorted relative paths."""
    files: list[str] = []
    folders: list[str] = []
    stack = [(folder, "")]
    while stack:
        current, prefix = stack.pop()
        with os.scandir(current) as it:
            for item in it:
                rel = prefix + item.name
                if item.is_dir(follow_symlinks=False):
                    folders.append(rel)
                    stack.append((Path(item.path), rel + "/"))
                else:
                    files.append(rel)
    return sorted(files), sorted(folders)
