"""The build cache: ``<cache_dir>/builds/<key>/`` holds ``asset/`` (the Lambda code) and ``build.json``.

``<cache_dir>/wheels/<key>/`` is laid out the same way, with the pure wheel of a local package (a shared
library, say) in ``asset/``, keyed by its sources: it is built once for every package that uses it.

An entry is trusted only if its ``asset/`` still matches the manifest written when it was built: the
same files, each with the recorded size and content. A damaged entry (a file edited, truncated, deleted
or added) is rebuilt, never used.

Why stat first and content only where stat differs: the CDK fingerprints every byte of the asset folder
on each synth anyway (source-hashed assets), so hashing the contents again here would double the warm
path's file reading. Measured here (a benchmark package with pydantic: 282 files, 10.4 MB, warm page
cache, median of 15): stat of every file 2.8 ms, SHA-256 of every file 29.5 ms, per package per synth.
Accidental damage always changes a size or an mtime, so the stat pass catches it; a file whose mtime
changed but whose size did not is hashed and compared with the recorded SHA-256 (an entry restored from
a CI cache with new mtimes is verified once, then its mtimes are recorded again). A deliberate edit
that keeps size and mtime is not caught here, but still can't deploy stale code: the CDK hashes the
content it stages.

Entries are touched (``build.json``'s mtime) each time they are used, so pruning by age removes only
builds no synth has used for that long.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

ASSET = "asset"
INFO = "build.json"
BUILDS = "builds"
WHEELS = "wheels"  # wheels of local packages, by their sources: entries laid out as builds are

# A build folder (".<key>.<random>") or a replaced entry (".trash-...") older than this is abandoned: a
# build never takes this long, so pruning it can't pull a folder from under a running synth.
_ABANDONED_SECONDS = 24 * 3600


def manifest(asset_dir: Path) -> dict[str, list]:
    """Every file below ``asset_dir``: relative path -> [size, mtime_ns, sha256] (symlinks: their target)."""
    files: dict[str, list] = {}
    for rel, st, path in _walk(asset_dir):
        if path.is_symlink():
            files[rel] = [-1, 0, "link:" + os.readlink(path)]
        else:
            files[rel] = [st.st_size, st.st_mtime_ns, _sha256(path)]
    return files


def verify(entry: Path, info: dict) -> bool:
    """True if ``entry``'s asset folder still holds exactly the files its manifest records."""
    recorded = info.get("manifest")
    if not isinstance(recorded, dict):
        return False  # written by an older version, or damaged: rebuild
    asset_dir = entry / ASSET
    seen = 0
    refreshed = False
    try:
        for rel, st, path in _walk(asset_dir):
            expected = recorded.get(rel)
            seen += 1
            if expected is None:
                return False
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


def use(entry: Path) -> dict | None:
    """``build.json`` of an intact entry, which is touched as used now; None when missing or damaged."""
    info = read_info(entry)
    if info is None or not verify(entry, info):
        return None
    touch(entry)
    return info


def read_info(entry: Path) -> dict | None:
    """``build.json`` of an entry, or None when it is missing or unreadable (an incomplete entry)."""
    try:
        info = json.loads((entry / INFO).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def write_info(entry: Path, info: dict) -> None:
    """Write ``build.json`` whole (temporary file, then rename): a reader never sees half of it."""
    tmp = entry / f".{INFO}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
    tmp.replace(entry / INFO)


def touch(entry: Path) -> None:
    """Record that ``entry`` was used now (for pruning by age). Best effort: the cache may be read-only."""
    with contextlib.suppress(OSError):
        os.utime(entry / INFO)


@dataclass(frozen=True)
class Entry:
    path: Path
    last_used: float  # epoch seconds
    bytes: int
    complete: bool

    @property
    def kind(self) -> str:
        """``builds`` or ``wheels``."""
        return self.path.parent.name


def entries(cache_dir: Path, *, sizes: bool = True) -> list[Entry]:
    """Every folder in ``<cache_dir>/builds`` and ``wheels``: finished entries, abandoned or running builds."""
    folders = [cache_dir / BUILDS, cache_dir / WHEELS]
    found = []
    for path in sorted(p for folder in folders if folder.is_dir() for p in folder.iterdir()):
        if not path.is_dir():
            continue
        info = path / INFO
        complete = not path.name.startswith(".") and info.is_file()
        try:
            last_used = (info if complete else path).stat().st_mtime
        except OSError:
            continue
        size = sum(st.st_size for _, st, _ in _walk(path)) if sizes else 0
        found.append(Entry(path, last_used, size, complete))
    return found


def prune(cache_dir: Path, older_than_days: float, now: float | None = None) -> list[Entry]:
    """Delete entries unused for ``older_than_days`` and abandoned build folders; return what went."""
    now = time.time() if now is None else now
    removed = []
    for entry in entries(cache_dir, sizes=False):
        age = now - entry.last_used
        if age > (older_than_days * 86400 if entry.complete else _ABANDONED_SECONDS):
            discard(entry.path)
            removed.append(entry)
    return removed


def discard(entry: Path) -> None:
    """Remove an entry: first renamed out of the way (atomic), so no reader finds it half deleted."""
    trash = entry.with_name(f".trash-{entry.name}-{os.getpid()}-{time.monotonic_ns()}")
    try:
        os.rename(entry, trash)
    except OSError:
        return  # already gone (another process pruned or replaced it)
    shutil.rmtree(trash, ignore_errors=True)


def _walk(folder: Path):
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
