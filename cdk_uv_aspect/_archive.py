"""Archive: a built folder as a deterministic zip, and as a copy in a folder of the user's choosing.

The same folder content gives the same zip bytes: entries sorted by path, one fixed timestamp, fixed
permissions, one compression level, no extra fields. (The bytes of compressed data depend on the zlib
that Python links; the same machine or image always gives the same zip.)
"""

from __future__ import annotations

import os
import shutil
import stat
import zipfile
from pathlib import Path

from ._files import FILE_MODE, atomic_file, publish_dir, work_dir

# The earliest date a zip entry can carry (the format counts from 1980); what SOURCE_DATE_EPOCH-style
# reproducible archivers use.
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
EXECUTABLE_MODE = 0o755  # files the build left executable by their owner (native tools in some wheels)


def files_of(folder: Path) -> list[Path]:
    """Every file below ``folder`` (symlinks followed), sorted by its '/'-separated relative path."""
    found = [Path(d, n) for d, _, names in os.walk(folder, followlinks=True) for n in names]
    return sorted((p for p in found if p.is_file()), key=lambda p: p.relative_to(folder).as_posix())


def write_zip(folder: Path, dest: Path) -> int:
    """Zip ``folder``'s files into ``dest`` (replaced atomically); returns the zip's size in bytes."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(dest) as raw, zipfile.ZipFile(raw, "w") as archive:
        for path in files_of(folder):
            info = zipfile.ZipInfo(path.relative_to(folder).as_posix(), date_time=ZIP_DATE)
            mode = EXECUTABLE_MODE if path.stat().st_mode & stat.S_IXUSR else FILE_MODE
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.create_system = 3  # Unix, whatever the host: the mode bits above are Unix bits
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes(), compresslevel=6)
    return dest.stat().st_size


def is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def copy_folder(folder: Path, dest: Path, *, replace: bool) -> None:
    """Copy ``folder`` to ``dest``, whole or not at all; an existing ``dest`` is replaced only if asked.

    The caller checks that replacing ``dest`` is allowed; here a non-empty ``dest`` without ``replace``
    is a ``FileExistsError``.
    """
    if dest.exists() and not is_empty_dir(dest) and not replace:
        raise FileExistsError(dest)
    if dest.exists() and not dest.is_dir():
        raise NotADirectoryError(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with work_dir(dest.parent, dest.name) as work:
        copy = work / "copy"
        shutil.copytree(folder, copy, symlinks=False)
        if publish_dir(copy, dest):  # new, or an empty folder
            return
        old = work / "old"
        dest.rename(old)  # the old content leaves in one step, and is deleted only once the copy is in
        try:
            copy.rename(dest)
        except OSError:
            old.rename(dest)
            raise
