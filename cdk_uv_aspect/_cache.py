"""The build cache's entries: one place to name, look up, verify, write and publish an entry.

``<cache_dir>/builds/<key>/`` holds ``asset/`` (the Lambda code), ``build.json`` and ``sbom.cdx.json`` (the
asset's SBOM: beside the asset, so that it never changes the asset's hash).

``<cache_dir>/wheels/<key>/`` is laid out the same way, with the pure wheel of a local package (a shared
library, say) in ``asset/``, keyed by its sources: it is built once for every package that uses it. So is
``<cache_dir>/store/<key>/``: one third-party distribution installed and compiled for a target (``_store``),
keyed by its locked hashes, which every build of that target assembles its folder from.

An entry is used only through ``use``, whatever its kind (builds, local wheels, and any kind added
later), and only if it is provably ours and intact:

- ours: a real folder of this user's (not a link), laid out as we write it (``asset/``, ``build.json``
  and the files ``build.json`` names as ``beside``; none a link, nothing else there), every file in it
  this user's. A link could lead anywhere (a copy elsewhere, another user's files); another user's
  entry (a CI cache restored as root) could hold anything, with a manifest to match.
- intact: its ``asset/`` still matches the manifest written when it was built: the same files, each
  with the recorded size and content, and the files beside it their recorded content.

Anything else at an entry's name (damaged, or not ours) is rebuilt and replaced, never used; a link
there is removed, never followed.

(Longer than most modules, and one job: every kind of entry is trusted, written and pruned by the same
code, so that what makes an entry usable is decided in one place.)

Why stat first and content only where stat differs: the CDK fingerprints every byte of the asset folder
on each synth anyway (source-hashed assets), so hashing the contents again here would double the warm
path's file reading. Measured here (a benchmark package with pydantic: 282 files, 10.4 MB, warm page
cache, median of 15): stat of every file 2.8 ms, SHA-256 of every file 29.5 ms, per package per synth.
Accidental damage always changes a size or an mtime, so the stat pass catches it; a file whose mtime
changed but whose size did not is hashed and compared with the recorded SHA-256 (an entry restored from
a CI cache with new mtimes is verified once, then its mtimes are recorded again). A deliberate edit
that keeps size and mtime is not caught here, but still can't deploy stale code: the CDK hashes the
content it stages.

Entries are touched (``build.json``'s mtime) each time they are used, so pruning by age (``_prune``)
removes only builds no synth has used for that long.

Its API, for the builds: ``private_dir`` (the cache's folders, this user's only), ``entry_key`` (an
entry's name from what decides its content), ``use`` (an intact entry, or None), ``manifest`` and
``write_info`` (an entry's record), ``publish`` (a finished entry into place, atomically) and ``discard``.
Longer than most modules, and one job: an entry's life, from its name to its publication, with every check
that decides whether an entry is trusted in one place (the builds, the local wheels, the derived layer
folders, the team cache and pruning all go through it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import stat
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypeGuard

from ._errors import ToolError, setting
from ._files import atomic_write, file_error, publish_dir, short_name

ASSET = "asset"
INFO = "build.json"
BUILDS = "builds"
WHEELS = "wheels"  # wheels of local packages, by their sources: entries laid out as builds are
STORE = "store"  # third-party distributions installed and compiled for a target, by their lock (see _store)


def manifest(asset_dir: Path) -> dict[str, list[Any]]:
    """Every file below ``asset_dir``: relative path -> [size, mtime_ns, sha256] (symlinks: their target)."""
    files: dict[str, list[Any]] = {}
    for rel, st, path in walk(asset_dir):
        if path.is_symlink():
            files[rel] = [-1, 0, "link:" + os.readlink(path)]
        else:
            files[rel] = [st.st_size, st.st_mtime_ns, _sha256(path)]
    return files


def verify(entry: Path, info: dict[str, Any]) -> bool:
    """True if ``entry``'s asset folder still holds exactly the files its manifest records, and the files
    beside it (an SBOM) have the SHA-256 recorded in ``beside``."""
    recorded = info.get("manifest")
    if not isinstance(recorded, dict):
        return False  # written by an older version, or damaged: rebuild
    beside = info.get("beside") or {}
    try:
        if any(_sha256(entry / name) != digest for name, digest in beside.items()):
            return False
    except (OSError, AttributeError):
        return False
    asset_dir = entry / ASSET
    seen = 0
    refreshed = False
    try:
        for rel, st, path in walk(asset_dir):
            expected = recorded.get(rel)
            seen += 1
            if not _recorded(expected) or not mine(st):
                return False  # not in the manifest, a record of another shape, or another user's file
            size, mtime_ns, digest = expected
            if size == -1:
                if not path.is_symlink() or "link:" + os.readlink(path) != digest:
                    return False
            elif st.st_size != size:
                return False
            elif st.st_mtime_ns != mtime_ns:
                if _sha256(path) != digest:
                    return False
                expected[1] = st.st_mtime_ns
                refreshed = True
    except OSError:
        return False
    if seen != len(recorded):
        return False  # a file was deleted
    if refreshed:
        write_info(entry, info)
    return True


def _recorded(expected: object) -> TypeGuard[list[Any]]:
    """Whether a manifest's record of a file has the shape ``manifest`` writes: [size, mtime_ns, sha256]."""
    return (
        isinstance(expected, list)
        and len(expected) == 3
        and all(isinstance(n, int) and not isinstance(n, bool) for n in expected[:2])
        and isinstance(expected[2], str)
    )


def use(entry: Path) -> dict[str, Any] | None:
    """``build.json`` of an intact entry of ours (see the module's docstring), which is touched as used
    now; None when it is missing, damaged or not provably ours.

    Every entry, whatever its kind, is used only through here: the checks hold for all of them.
    """
    info = read_info(entry)
    if info is None or not laid_out_as_ours(entry, info) or not verify(entry, info):
        return None
    touch(entry)
    return info


def read_info(entry: Path) -> dict[str, Any] | None:
    """``build.json`` of an entry that is a real folder of this user's, itself a regular file of this user's
    (never a link); None otherwise, or when it is missing or unreadable (an incomplete entry)."""
    if not owned_folder(entry):
        return None
    try:
        fd = os.open(entry / INFO, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode) or not mine(st):
                return None
            info = json.loads(f.read())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def owned_folder(path: Path) -> bool:
    """Whether ``path`` is a real folder (not a link to one) that belongs to this user."""
    try:
        st = path.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and mine(st)


def laid_out_as_ours(entry: Path, info: dict[str, Any]) -> bool:
    """Whether ``entry`` holds what this library writes there, and nothing else: ``asset/`` (a real
    folder), ``build.json`` and the files ``build.json`` names as ``beside`` (regular files, by plain
    names), each of this user's, none a link."""
    beside = info.get("beside") or {}
    if not isinstance(beside, dict) or not all(_PLAIN.fullmatch(str(name)) for name in beside):
        return False
    expected = {ASSET: stat.S_ISDIR, INFO: stat.S_ISREG, **{str(name): stat.S_ISREG for name in beside}}
    found = set()
    try:
        with os.scandir(entry) as it:
            for item in it:
                st = item.stat(follow_symlinks=False)
                kind = expected.get(item.name)
                if kind is None or not kind(st.st_mode) or not mine(st):
                    return False
                found.add(item.name)
    except OSError:
        return False
    return found == set(expected)


_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # a file name beside the asset: no path, no dot folder


def mine(st: os.stat_result) -> bool:
    """Whether the file with this stat belongs to this user (always, where there are no user ids)."""
    return not hasattr(os, "getuid") or st.st_uid == os.getuid()


def write_info(entry: Path, info: dict[str, Any]) -> None:
    """Write ``build.json`` whole: a reader never sees half of it."""
    atomic_write(entry / INFO, json.dumps(info, indent=1, sort_keys=True) + "\n")


def entry_key(name: str, parts: Mapping[str, object]) -> str:
    """An entry's name: readable ``name`` (cut short: see ``short_name``), then a digest of everything that
    decides its content (so the cut changes nothing)."""
    return f"{short_name(name)}-{hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]}"


def private_dir(path: Path) -> Path:
    """Create ``path`` (a folder of the build cache) for this user only; refuse it, or the cache root
    above it, when another user owns it or others could write to it.

    Both are checked, not only ``path``: whoever can write to the cache root can replace ``builds/``
    whole. A folder above the root that others can write to is not refused (a CI checkout often is,
    GitLab's runs with umask 0000): a folder put in place of ours there belongs to them, and is refused.
    """
    root = path.parent
    try:
        root.parent.mkdir(parents=True, exist_ok=True)  # the folders above: as `mkdir -p` makes them
        root.mkdir(exist_ok=True, mode=0o700)
        path.mkdir(exist_ok=True, mode=0o700)
        folders = [(folder, folder.resolve(), folder.stat()) for folder in (root, path)]
    except OSError as exc:
        error = file_error(exc, cache=True)
        raise ToolError(
            f"the build cache can't be created at {path}: {error.problem}",
            fix=error.fix,
        ) from None
    for folder, real, st in folders:
        if not stat.S_ISDIR(st.st_mode):  # pragma: no cover - mkdir(exist_ok=True) refuses a file already
            raise ToolError(f"the build cache folder {folder} is not a folder", fix="remove it")
        if hasattr(os, "getuid") and (st.st_uid != os.getuid() or _others_can_write(st)):
            shown = folder if real == folder.absolute() else f"{folder} (a link to {real})"
            raise ToolError(
                f"the build cache {shown} is not private: it belongs to another user or others can write to "
                "it, so a build there could be swapped before it is deployed",
                fix=f"point {setting('cache_dir')} at a folder of your own (the default is "
                f"~/.cache/cdk-uv-aspect), or `chmod go-w {real}` if it is yours",
            )
    return path


def _others_can_write(st: os.stat_result) -> bool:
    """Whether users other than this one may write to a folder with this stat.

    A folder writable by its group counts, unless the group is this user's own private group (the
    user-private-group convention of umask 002 systems: a group of the user's name, no other member).
    """
    if st.st_mode & stat.S_IWOTH:
        return True
    if not st.st_mode & stat.S_IWGRP:
        return False
    try:
        import grp
        import pwd

        user = pwd.getpwuid(os.getuid())
        group = grp.getgrgid(st.st_gid)
    except (ImportError, KeyError):
        return True
    return not (group.gr_gid == user.pw_gid and group.gr_name == user.pw_name and set(group.gr_mem) <= {user.pw_name})


def publish(work: Path, final: Path, *, rebuild: bool) -> Path:
    """Rename the finished entry ``work`` to ``final``, atomically.

    Two synths building the same key at once: the first rename wins, the other finds a complete entry
    and drops its own copy (identical inputs, so identical content). An existing entry is replaced only
    when it is damaged (checked again here: another synth may have just replaced it) or on rebuild.
    """
    replace = rebuild
    for _ in range(3):
        if publish_dir(work, final):
            return final
        if not replace and use(final) is not None:
            return final
        discard(final)
        replace = False  # replace at most what was there at first, never a rival's fresh build
    raise OSError(f"could not publish the build into {final}: other processes keep replacing it")


def touch(entry: Path) -> None:
    """Record that ``entry`` was used now (for pruning by age). Best effort: the cache may be read-only."""
    with contextlib.suppress(OSError):
        os.utime(entry / INFO)


def discard(entry: Path) -> None:
    """Remove an entry: first renamed out of the way (atomic), so no reader finds it half deleted."""
    trash = entry.with_name(f".trash-{entry.name}-{os.getpid()}-{time.monotonic_ns()}")
    try:
        os.rename(entry, trash)
    except OSError:
        return  # already gone (another process pruned or replaced it)
    if trash.is_symlink():
        trash.unlink(missing_ok=True)  # a link in place of an entry: the link goes, never what it leads to
    else:
        shutil.rmtree(trash, ignore_errors=True)


def walk(folder: Path) -> Iterator[tuple[str, os.stat_result, Path]]:
    """(relative path, lstat, path) of every file and symlink below ``folder``, in no particular order."""
    stack = [(folder, "")]
    while stack:
        current, prefix = stack.pop()
        with os.scandir(current) as it:
            for item in it:
                rel = prefix + item.name
                if item.is_dir(follow_symlinks=False):
                    stack.append((Path(item.path), rel + "/"))
                else:
                    yield rel, item.stat(follow_symlinks=False), Path(item.path)


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
