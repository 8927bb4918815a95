"""An entry of the build cache as one object (a deterministic tar.gz), and back, checked on the way in.

The team cache (``_remote``) stores each entry whole, as one object: a reader gets all of it or nothing.
The same entry always packs to the same bytes (members in a fixed order, no dates, no owners, the modes
the build cache uses), so two writers racing on one key write the same object.

Packed, in this order: ``build.json`` (its manifest without this machine's mtimes), the files beside the
asset (the SBOM), then ``asset/`` and everything below it, folders before what they hold. An entry with a
link or a special file in it is not packed (``NotShareable``): it stays in this machine's cache.

Unpacking trusts nothing in the object. ``build.json`` comes first, and every member after it must be a
regular file or folder under ``asset/``, or one of the files beside it that ``build.json`` lists, with a
relative name (no ``..``, no absolute path), the size and SHA-256 the manifest records, and no second
copy; links, hard links, devices and pipes are refused, and every file the manifest lists must come.
Files are created new (``O_EXCL | O_NOFOLLOW``) in a private folder that nothing else writes to, so no
name in the object reaches anything outside it. Any failure is a ``Refused`` naming what was wrong.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import stat
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Protocol

ASSET = "asset"  # as _cache.ASSET: the folder Lambda runs
INFO = "build.json"  # as _cache.INFO
_DIR_MODE = 0o755
_FILE_MODE = 0o644
_EXEC_MODE = 0o755
_CHUNK = 1 << 20
# gzip's fastest level. Measured on a build with pydantic (270 files, 10.2 MB), on a loaded machine:
# level 1 packs in 0.7 s to 4.1 MB, level 6 in 1.8 s to 3.7 MB. Writers save the CPU; readers download
# 12% more, a few milliseconds at S3's speeds, and unpack as fast (0.3-0.4 s).
_LEVEL = 1
_MAX_INFO = 64 << 20  # bytes: a manifest of a few hundred thousand files; anything larger is not ours
_MAX_ENTRY = 10 << 30  # bytes: Lambda's largest code (a container image); a larger entry fills a disk
# Names of the files beside asset/ (the SBOM): a plain file name, never a path.
_BESIDE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")


class Readable(Protocol):
    """What ``unpack`` reads from: a file, or a download's body."""

    def read(self, size: int = -1, /) -> bytes: ...


class NotShareable(Exception):
    """The entry holds a link or a special file: it can't be stored as plain files."""


class Refused(Exception):
    """An object that is not a whole, intact entry; the message says what was wrong with it."""


def pack(entry: Path, info: dict[str, Any], out: IO[bytes]) -> None:
    """Write ``entry`` (``build.json`` is ``info``) to ``out`` as a deterministic tar.gz."""
    shared = dict(info)
    # Modification times are this machine's (the stat check of the local cache): not part of the entry.
    shared["manifest"] = {rel: [size, 0, digest] for rel, (size, _, digest) in sorted(info["manifest"].items())}
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=_LEVEL) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        data = (json.dumps(shared, indent=1, sort_keys=True) + "\n").encode()
        archive.addfile(_member(INFO, tarfile.REGTYPE, _FILE_MODE, len(data)), io.BytesIO(data))
        for name in sorted(info.get("beside") or {}):
            _add_file(archive, entry / name, name)
        for rel, path, st in _tree(entry / ASSET, ASSET):
            if stat.S_ISDIR(st.st_mode):
                archive.addfile(_member(rel, tarfile.DIRTYPE, _DIR_MODE, 0))
            elif stat.S_ISREG(st.st_mode):
                _add_file(archive, path, rel)
            else:
                raise NotShareable(f"{rel} is a link or a special file")


def _tree(folder: Path, rel: str) -> Iterator[tuple[str, Path, os.stat_result]]:
    """``folder`` and everything below it, sorted by name, each folder before what it holds (lstat)."""
    st = folder.lstat()
    yield rel, folder, st
    if stat.S_ISDIR(st.st_mode):
        for name in sorted(os.listdir(folder)):
            yield from _tree(folder / name, f"{rel}/{name}")


def _add_file(archive: tarfile.TarFile, path: Path, rel: str) -> None:
    st = path.lstat()
    if not stat.S_ISREG(st.st_mode):
        raise NotShareable(f"{rel} is a link or a special file")
    mode = _EXEC_MODE if st.st_mode & stat.S_IXUSR else _FILE_MODE
    with open(path, "rb") as f:
        archive.addfile(_member(rel, tarfile.REGTYPE, mode, st.st_size), f)


def _member(name: str, kind: bytes, mode: int, size: int) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type, member.mode, member.size = kind, mode, size
    member.mtime, member.uid, member.gid, member.uname, member.gname = 0, 0, 0, "", ""
    return member


def unpack(stream: Readable, work: Path) -> dict[str, Any]:
    """Extract the packed entry read from ``stream`` into the empty private folder ``work``.

    Every member is checked as it comes (see the module's docstring); returns ``build.json``, its
    manifest with the mtimes of the files written here. Raises ``Refused``.
    """
    try:
        with tarfile.open(fileobj=stream, mode="r|gz") as archive:  # type: ignore[call-overload]
            return _extract(archive, work)
    except (FileExistsError, NotADirectoryError) as exc:  # a file and a folder of the same name
        where = os.path.relpath(exc.filename, work) if exc.filename else "a name"
        raise Refused(f"{where} comes as a file and as a folder") from None
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, UnicodeError) as exc:
        raise Refused(f"the object is not a whole tar.gz ({type(exc).__name__}: {exc})") from None


def _extract(archive: tarfile.TarFile, work: Path) -> dict[str, Any]:
    first = archive.next()
    if first is None or first.name != INFO or first.type != tarfile.REGTYPE or first.size > _MAX_INFO:
        raise Refused(f"its first member is not {INFO}")
    info = _read_info(archive, first)
    manifest: dict[str, list[Any]] = info["manifest"]
    beside: dict[str, str] = info.get("beside") or {}
    seen: set[str] = set()
    while (member := archive.next()) is not None:  # not `for ... in archive`: that starts again at build.json
        name = _checked_name(member.name)
        if name in seen:
            raise Refused(f"{name} comes twice")
        seen.add(name)
        if member.isdir():
            if name != ASSET and not name.startswith(ASSET + "/"):
                raise Refused(f"the folder {name} is outside {ASSET}/")
            (work / name).mkdir(mode=0o700, parents=True, exist_ok=True)
            continue
        if member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE):
            raise Refused(f"{name} is a link or a special file; an entry holds only files and folders")
        line: list[Any] | None = None
        if name.startswith(ASSET + "/"):
            line = manifest.get(name.removeprefix(ASSET + "/"))
            if line is None:
                raise Refused(f"{name} is not in its manifest")
            size, digest = line[0], line[2]
        elif name in beside:
            size, digest = member.size, beside[name]
        else:
            raise Refused(f"{name} is neither in {ASSET}/ nor a file {INFO} lists beside it")
        if member.size != size:
            raise Refused(f"{name} has {member.size} bytes, its manifest says {size}")
        mtime_ns = _write(archive, member, work / name, digest)
        if line is not None:
            line[1] = mtime_ns
    missing = sorted(({f"{ASSET}/{rel}" for rel in manifest} | set(beside)) - seen)
    if missing:
        raise Refused(f"{len(missing)} file(s) of its manifest are missing, e.g. {missing[0]}")
    for folder in sorted((p for p in work.rglob("*") if p.is_dir()), reverse=True):
        folder.chmod(_DIR_MODE)
    return info


def _read_info(archive: tarfile.TarFile, member: tarfile.TarInfo) -> dict[str, Any]:
    f = archive.extractfile(member)
    assert f is not None  # a regular file
    try:
        info = json.loads(f.read())
    except ValueError:
        raise Refused(f"its {INFO} is not JSON") from None
    manifest = info.get("manifest") if isinstance(info, dict) else None
    if not (isinstance(manifest, dict) and isinstance(info.get("package"), str)):
        raise Refused(f"its {INFO} does not name a package and list its files")
    for rel, value in manifest.items():
        _checked_name(f"{ASSET}/{rel}")
        if not (
            isinstance(value, list)
            and len(value) == 3
            and isinstance(value[0], int)
            and value[0] >= 0
            and isinstance(value[2], str)
        ):
            raise Refused(f"its manifest's line for {rel} is not [size, mtime, sha256] of a file")
    if sum(value[0] for value in manifest.values()) > _MAX_ENTRY:
        raise Refused(f"its manifest lists more than {_MAX_ENTRY >> 30} GiB of files, more than any Lambda code")
    beside = info.get("beside") or {}
    if not isinstance(beside, dict) or not all(
        isinstance(n, str) and _BESIDE.fullmatch(n) and n not in (INFO, ASSET) and isinstance(d, str)
        for n, d in beside.items()
    ):
        raise Refused(f"its {INFO} lists files beside {ASSET}/ that are not plain file names")
    checked: dict[str, Any] = info
    return checked


def _checked_name(name: str) -> str:
    """A member's name, if it is a plain relative path: no absolute path, no ``..``, nothing odd in it."""
    parts = name.split("/")
    if (
        not name
        or name.startswith("/")
        or "\\" in name
        or "\0" in name
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise Refused(f"the member name {name!r} is not a plain relative path")
    return name


def _write(archive: tarfile.TarFile, member: tarfile.TarInfo, path: Path, digest: str) -> int:
    """Write a member to ``path`` (new, never through a link), checking its SHA-256; its mtime in ns."""
    source = archive.extractfile(member)
    assert source is not None  # a regular file
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = _EXEC_MODE if member.mode & stat.S_IXUSR else _FILE_MODE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    sha = hashlib.sha256()
    with os.fdopen(fd, "wb") as out:
        while chunk := source.read(_CHUNK):
            sha.update(chunk)
            out.write(chunk)
        os.fchmod(out.fileno(), mode)
    if sha.hexdigest() != digest:
        raise Refused(f"{member.name} does not match its manifest (another SHA-256)")
    return path.stat().st_mtime_ns
