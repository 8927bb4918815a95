"""Files written whole or not at all: a reader never sees half a file or half a folder.

Everything this library writes (build.json, RECORD, zips, reports, cache entries, image contexts) is
made under a temporary name in the destination's folder, then renamed into place, which is atomic on
one file system. On failure the temporary file or folder is removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

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


@contextlib.contextmanager
def work_dir(parent: Path, name: str) -> Iterator[Path]:
    """A private folder (mode 0700, unpredictable name) beside where ``name`` is published; removed after."""
    work = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=parent))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def publish_dir(work: Path, final: Path) -> bool:
    """Rename the finished folder ``work`` to ``final``; False when ``final`` already exists (it stays).

    Any other failure (permissions, a full disk) is raised.
    """
    try:
        os.rename(work, final)
    except OSError:
        if not final.exists():
            raise
        return False
    return True
