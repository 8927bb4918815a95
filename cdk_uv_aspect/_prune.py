"""The build cache's housekeeping: which folders are this library's, pruning by age, abandoned builds.

Pruning deletes only folders this library provably wrote (their names, a ``build.json`` with its fields
and the entry's layout, or a private work folder of this user's): a user's own folder in the cache stays,
whatever its name. Entries are touched each time they are used
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
from ._cache import ASSET, BUILDS, INFO, STORE, WHEELS, discard, laid_out_as_ours, mine, read_info, walk
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
        """``builds``, ``wheels`` or ``store``."""
        return self.path.parent.name


# What this library names the folders it writes in builds/ and wheels/ (see entry_key, work_dir and
# discard): "<name>-<32 hex digits>", ".<that>.<8 random characters>" while being built, and
# ".trash-<that>-<pid>-<ns>" while being deleted. Only folders named so are ever deleted by pruning.
_KEY = r"[A-Za-z0-9][A-Za-z0-9._-]*-[0-9a-f]{32}"
_FINISHED = re.compile(rf"{_KEY}")
_IN_PROGRESS = re.compile(rf"\.{_KEY}\.[a-z0-9_]{{8}}|\.trash-{_KEY}-\d+-\d+")


def entries(cache_dir: Path, *, sizes: bool = True) -> list[Entry]:
    """The folders of ``<cache_dir>/builds``, ``wheels`` and ``store`` that this library provably wrote: finished
    entries, and abandoned or running builds. Anything else there (a user's own folder, a link, another
    user's folder) is not listed, whatever its name.

    A finished entry is recognised by its name, its ``build.json`` (a regular file naming the package and
    the manifest of its files) and its layout (``_cache.laid_out_as_ours``); a build in progress or a
    replaced entry by ``private_work``.
    """
    found = []
    for folder in (cache_dir / BUILDS, cache_dir / WHEELS, cache_dir / STORE):
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
            if not stat.S_ISDIR(st.st_mode) or not mine(st):
                continue  # a file, a link or another user's folder is never ours
            info = read_info(path) if _FINISHED.fullmatch(name) else None
            complete = info is not None and _is_ours(info) and laid_out_as_ours(path, info)
            if not complete and not private_work(path, name):
                continue  # named like ours, but not provably ours: leave it alone
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


def sweep(folder: Path, *, again: bool = False) -> None:
    """Once per process and folder (``again``: once more): remove the private build folders there that a
    killed process left (a work folder or trash that no live process holds; see ``_files.work_dir``)."""
    with _state.LOCK:
        if folder in _state.SWEPT and not again:
            return
        _state.SWEPT.add(folder)
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        path = folder / name
        if private_work(path, name):  # a user's look-alike folder stays
            remove_if_abandoned(path)


def private_work(path: Path, name: str) -> bool:
    """Whether ``path`` is a build folder or a replaced entry of ours: named so (``_IN_PROGRESS``), a private
    folder of this user's (mode 0700, as ``mkdtemp`` makes it, never a link) that holds an ``asset/``
    folder or a ``build.json`` (what a build writes first and last)."""
    if not _IN_PROGRESS.fullmatch(name):
        return False
    try:
        st = path.lstat()
        inside = [(path / child).lstat() for child in (ASSET, INFO) if os.path.lexists(path / child)]
    except OSError:
        return False
    return (
        stat.S_ISDIR(st.st_mode)
        and mine(st)
        and stat.S_IMODE(st.st_mode) == 0o700
        and any(stat.S_ISDIR(c.st_mode) or stat.S_ISREG(c.st_mode) for c in inside)
    )
