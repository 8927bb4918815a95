"""Files written whole or not at all: a reader never sees half a file or half a folder.

Everything this library writes (build.json, RECORD, zips, reports, cache entries, image contexts) is
made under a temporary name in the destination's folder, then renamed into place, which is atomic on
one file system. On failure the temporary file or folder is removed.

The second half says what is wrong with a file we can't use: a special file in a package's sources
(refused by path before anything reads it), and any failure of the file system as a ``FileError``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ._errors import FileError, WorkspaceError, setting

FILE_MODE = 0o644  # what every file we publish gets, whatever the umask: others may read it


@contextlib.contextmanager
def atomic_file(path: Path, *, mode: int = FILE_MODE) -> Iterator[BinaryIO]:
    """A file opened for writing that appears at ``path`` whole when the block ends, and not at all if
    it raises: a temporary file in the same folder, then a rename."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        os.chmod(tmp, mode)  # mkstemp makes 0600
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: Path, data: str | bytes, *, mode: int = FILE_MODE) -> None:
    """Write ``data`` to ``path`` whole (see ``atomic_file``)."""
    with atomic_file(path, mode=mode) as f:
        f.write(data.encode() if isinstance(data, str) else data)


NAME_LENGTH = 64
"""The most characters of a name this library puts into a file name (a package's, which PEP 508 leaves
unbounded), so that with a digest and the affixes of work folders, temporary files and trash it stays far
below the 255 bytes a file name may have."""


def short_name(name: str) -> str:
    """``name``, cut to ``NAME_LENGTH`` characters (and its cut end tidied) when longer: for file names
    that also hold a digest of what they are, so that the cut loses nothing."""
    return name if len(name) <= NAME_LENGTH else name[:NAME_LENGTH].rstrip("._-") or "x"


@contextlib.contextmanager
def work_dir(parent: Path, name: str) -> Iterator[Path]:
    """A private folder (mode 0700, unpredictable name) beside where ``name`` is published; removed after.

    The folder is locked (``flock``) while its process works in it. A process killed outright (SIGKILL,
    a lost machine) can't remove it: the next build of ``name`` does, once no process holds its lock.
    """
    remove_abandoned(parent, name)
    work = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=parent))
    lock = _lock(work)
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if lock is not None:
            os.close(lock)


_SETTLED = 2.0  # seconds: a work folder younger than this may not be locked yet by the process that made it


def remove_abandoned(parent: Path, name: str) -> None:
    """Remove the work folders of ``name`` (``.<name>.*``) and its trash (``.trash-<name>-*``) that no
    live process holds: left by a process that was killed before it could clean up."""
    try:
        found = [p for p in parent.iterdir() if p.name.startswith((f".{name}.", f".trash-{name}-"))]
    except OSError:
        return
    for path in found:
        remove_if_abandoned(path)


def remove_if_abandoned(path: Path) -> bool:
    """Remove the private folder ``path`` if no process holds its lock (see ``work_dir``); True if removed.

    Only a private folder of this user's (mode 0700, as ``mkdtemp`` makes it, never a link) is one: a
    folder of another kind named like ours is someone's own.
    """
    try:
        st = path.lstat()
    except OSError:
        return False
    mine = not hasattr(os, "getuid") or st.st_uid == os.getuid()
    if not stat.S_ISDIR(st.st_mode) or not mine or stat.S_IMODE(st.st_mode) != 0o700:
        return False
    if time.time() - st.st_mtime < _SETTLED:
        return False
    lock = _lock(path)
    if lock is None:
        return False  # its process still works in it
    try:
        shutil.rmtree(path, ignore_errors=True)
    finally:
        os.close(lock)
    return True


def _lock(folder: Path) -> int | None:
    """An exclusive lock on ``folder`` (held until the descriptor is closed), or None if another process
    holds it. Only on POSIX: elsewhere nothing is locked, and abandoned folders wait for a prune."""
    if os.name != "posix":
        return None
    import fcntl

    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def publish_dir(work: Path, final: Path) -> bool:
    """Rename the finished folder ``work`` to ``final``; False when ``final`` already exists (it stays).

    Any other failure (permissions, a full disk) is raised.
    """
    try:
        os.rename(work, final)
    except OSError:
        if not os.path.lexists(final):  # a link there, even one to nothing, is something there
            raise
        return False
    return True


# --- files we can't use, and failures of the file system --------------------------------------------

_SPECIAL = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def check_source(path: Path) -> None:
    """Refuse, by path, a source file that can't be fingerprinted or copied safely.

    A named pipe, a socket or a device (also behind a link) would make reading it wait forever or never
    end; a link loop can't be read; a name that is not UTF-8 can't go into a wheel or a zip. Each is
    refused before anything reads it. A dangling link is left to the reader, which names it.
    """
    try:
        path.name.encode("utf-8")
    except UnicodeEncodeError:
        raise WorkspaceError(
            f"the file name {os.fsencode(path.name)!r} in {path.parent} is not valid UTF-8 text",
            fix="rename the file with a UTF-8 name, or remove it from the package: wheels and zips record "
            "file names as UTF-8",
        ) from None
    try:
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            st = path.stat()
    except FileNotFoundError:
        return  # a dangling link: the reader says it can't be read
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise WorkspaceError(
                f"{path} is a link loop (links that lead back to themselves)",
                fix="remove the link or point it at a real file of the package",
            ) from None
        return  # unreadable: the reader names it
    for is_kind, kind in _SPECIAL:
        if is_kind(st.st_mode):
            raise WorkspaceError(
                f"{path} is {kind}, not a regular file: reading it could wait forever or never end",
                fix="remove it from the package folder (or move it out of it): a package's sources are "
                "regular files, folders and links to them",
            )


def file_error(
    exc: OSError | UnicodeError,
    *,
    cache_dir: Path | None = None,
    cache: bool = False,
    where: Path | None = None,
    instead: str | None = None,
) -> FileError:
    """The error a user reads for a failure of the file system: what, where, and what to do.

    ``cache_dir``: the build cache, so that a failure inside it suggests moving the cache; ``cache``:
    the failure is the cache's wherever its path is (making the cache's folders). ``where``: the folder
    being written, named when the error has no path (a write to an open file fails with none); the build
    cache when not given. ``instead``: what else to do, outside the build cache (default: move the file).
    """
    if isinstance(exc, UnicodeError):
        return FileError(
            f"a file name or a text file is not valid UTF-8 ({exc})",
            fix="rename the file with a UTF-8 name (or save the text file as UTF-8)",
        )
    path, code, reason = _first(exc)
    place = Path(path) if path else where or cache_dir
    in_cache = cache or (place is not None and cache_dir is not None and place.is_relative_to(cache_dir))
    elsewhere = (
        f"or point the build cache at another folder: {setting('cache_dir')} (the "
        "default is ~/.cache/cdk-uv-aspect, under HOME)"
        if in_cache or place is None
        else instead or "or move it out of the way"
    )
    # "at <path>: <reason>" when the error names the file; "in <folder> (<reason>)" when only the folder
    # being written is known: never the reason in the path's place.
    what = f"{place}: {reason}" if path else (f"{reason} (in {place})" if place else reason)
    if code in (errno.ENOSPC, errno.EDQUOT):
        at = f"at {place}" if path else (f"in {place}" if place else "")
        problem, fix = f"the disk is full (or over quota) {at}".rstrip(), "free space there"
        if in_cache:
            fix += " (`cdk-uv cache prune --older-than 7` deletes builds unused for a week)"
    elif code == errno.EROFS:
        problem, fix = f"{what}: the file system is read-only", "mount it writable"
    elif code in (errno.EACCES, errno.EPERM):
        problem, fix = f"permission denied: {what}", "make it readable and writable for this user"
    elif code in (errno.ENOTDIR, errno.EEXIST):
        problem, fix = f"{what}: a part of this path is a file where a folder is needed", "remove or rename that file"
    elif code == errno.ELOOP:
        problem, fix = f"{what}: a link loop", "remove the link or point it at a real folder"
    elif code == errno.ENAMETOOLONG:
        # A name over the file system's limit can't be helped by a shorter path around it.
        long_name = next((n for n in Path(path or "").parts if len(os.fsencode(n)) > _NAME_MAX), None)
        if long_name is not None:
            problem = f"{what}: the name {long_name!r} is longer than the file system allows ({_NAME_MAX} bytes)"
            fix = "give it a shorter name"
        else:
            problem, fix = f"{what}: the path is too long", "use a shorter path"
    else:
        problem, fix = f"{what}", "check that path"
    return FileError(problem, fix=f"{fix}, {elsewhere}")


_NAME_MAX = 255  # bytes in one file name, on Linux's file systems and macOS's


def _first(exc: OSError) -> tuple[str | None, int | None, str]:
    """(path, errno, reason) of an OSError, or of the first failure a ``shutil.Error`` lists."""
    if isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list) and exc.args[0]:
        src, _dst, why = exc.args[0][0]
        code = getattr(why, "errno", None)
        return str(src), code, getattr(why, "strerror", None) or str(why)
    path = exc.filename if exc.filename is not None else None
    return (os.fsdecode(path) if path is not None else None), exc.errno, exc.strerror or str(exc)
