"""The build cache's housekeeping: which folders are this library's, pruning by age, abandoned builds.

Pruning deletes only folders this library wrote and recognises (their names, and a ``build.json`` with
its fields): a user's own folder in the cache stays. Entries are touched each time they are used
(``_cache.use``), so pruning by age removes only builds no synth has used for that long. A work folder
that a killed process left is swept by the next build in that folder (``sweep``).
"""

from __future__ import annotations

import math
import os
import re
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import _state
from ._cache import ASSET, BUILDS, INFO, WHEELS, discard, read_info, walk
from ._errors import SettingError
from ._files import remove_if_abandoned

# A build folder (".<key>.<random>") or a replaced entry (".trash-...") older than this is abandoned: a
# build never takes this long, so pruning it can't pull a folder from under a running synth.
_ABANDONED_SECONDS = 24 * 3600


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


# What this library names the folders it writes in builds/ and wheels/ (see entry_key, work_dir and
# discard): "<name>-<32 hex digits>", ".<that>.<8 random characters>" while being built, and
# ".trash-<that>-<pid>-<ns>" while being deleted. Only folders named so are ever deleted by pruning.
_KEY = r"[A-Za-z0-9][A-Za-z0-9._-]*-[0-9a-f]{32}"
_FINISHED = re.compile(rf"{_KEY}")
_IN_PROGRESS = re.compile(rf"\.{_KEY}\.[a-z0-9_]{{8}}|\.trash-{_KEY}-\d+-\d+")


def entries(cache_dir: Path, *, sizes: bool = True) -> list[Entry]:
    """The folders of ``<cache_dir>/builds`` and ``wheels`` that this library wrote: finished entries,
    and abandoned or running builds. Anything else there (a user's own folder, a link) is not listed.

    A finished entry is recognised by its name and its ``build.json`` (a JSON object naming the package
    and the manifest of its files); a build in progress by its name and the ``asset/`` folder or
    ``build.json`` it holds.
    """
    found = []
    for folder in (cache_dir / BUILDS, cache_dir / WHEELS):
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            continue  # no such folder (or not one): nothing of ours there
        for name in names:
            path = folder / name
            try:
                st = path.lstat()
            except OSError:
                continue
            if not stat.S_ISDIR(st.st_mode):
                continue  # a file or a link is never ours: entries are real folders
            complete = bool(_FINISHED.fullmatch(name)) and _is_ours(read_info(path))
            if not complete and not (_IN_PROGRESS.fullmatch(name) or _FINISHED.fullmatch(name)):
                continue
            if not complete and not ((path / ASSET).is_dir() or (path / INFO).is_file()):
                continue  # named like ours, but holding nothing we write: leave it alone
            try:
                last_used = (path / INFO if complete else path).stat().st_mtime
            except OSError:
                continue
            size = sum(st.st_size for _, st, _ in walk(path)) if sizes else 0
            found.append(Entry(path, last_used, size, complete))
    return found


def _is_ours(info: dict[str, Any] | None) -> bool:
    """Whether a ``build.json`` is one this library wrote: it names the package and lists its files."""
    return info is not None and isinstance(info.get("package"), str) and isinstance(info.get("manifest"), dict)


def check_days(days: float) -> float:
    """A number of days to prune by: finite and 0 or more (0: everything unused now)."""
    if not (isinstance(days, (int, float)) and math.isfinite(days) and days >= 0):
        raise SettingError(
            f"an age of {days!r} days can't be used to prune the build cache",
            fix="give a number of days, 0 or more (e.g. 30; 0 deletes every finished build)",
        )
    return float(days)


def prune(cache_dir: Path, older_than_days: float, now: float | None = None) -> list[Entry]:
    """Delete this library's entries unused for ``older_than_days`` and its abandoned build folders
    (a day old); return what went. Folders it did not write are never deleted."""
    limit = check_days(older_than_days) * 86400
    now = time.time() if now is None else now
    removed = []
    for entry in entries(cache_dir, sizes=False):
        age = now - entry.last_used
        if age > (limit if entry.complete else _ABANDONED_SECONDS):
            discard(entry.path)
            removed.append(entry)
    return removed


def sweep(folder: Path) -> None:
    """Once per process and folder: remove the private build folders there that a killed process left
    (a work folder or trash that no live process holds; see ``_files.work_dir``)."""
    with _state.LOCK:
        if folder in _state.SWEPT:
            return
        _state.SWEPT.add(folder)
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        path = folder / name
        # Named like ours and holding what we write first (a user's look-alike folder stays).
        if _IN_PROGRESS.fullmatch(name) and ((path / ASSET).is_dir() or (path / INFO).is_file()):
            remove_if_abandoned(path)
