"""Sandbox: the private folder a function is started in here, as Lambda's execution environment has it.

A read-only copy of the code (Lambda's ``/var/task`` is read-only), the layers extracted in order into one
``opt`` (Lambda's ``/opt``), an empty home of its own and a ``tmp``, all removed after. The originals
(folders of the cloud assembly) are read once while they are copied and checked unchanged after the run:
nothing the handler does reaches what gets deployed. ``_start`` starts the function in it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType


class Sandbox:
    """A private folder for starting a function: its code's copy, its layers', a home and a tmp of its own.

    ``with Sandbox(fn.code, fn.layers) as box:``; on leaving, ``box.changed`` lists the files of the
    originals that differ from what was copied (the run changed the cloud assembly) and the folder is
    removed. With ``bytecode=False`` the copy leaves ``__pycache__`` out: the same start without the
    bytecode shipped.
    """

    def __init__(self, code: Path, layers: Sequence[Path] = (), *, bytecode: bool = True) -> None:
        self.code = code
        self.layers = tuple(layers)
        self.bytecode = bytecode
        self.root = Path()
        self.changed: list[str] = []
        self._digests: list[tuple[Path, dict[str, str]]] = []

    @property
    def task(self) -> Path:
        return self.root / "task"

    @property
    def opt(self) -> Path:
        return self.root / "opt"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    def __enter__(self) -> Sandbox:
        self.root = Path(tempfile.mkdtemp(prefix="cdk-uv-run-"))  # 0700: this user's alone
        try:
            self._digests.append((self.code, _copy_tree(self.code, self.task, self.bytecode)))
            self.opt.mkdir()
            for layer in self.layers:
                self._digests.append((layer, _copy_tree(layer, self.opt, self.bytecode)))
            for folder in (self.task, self.opt):
                _read_only(folder)
            self.fresh()
        except BaseException:
            _remove(self.root)
            raise
        return self

    def fresh(self) -> None:
        """An empty home and tmp, as a new execution environment has."""
        for folder in (self.home, self.tmp):
            _remove(folder)
            folder.mkdir(mode=0o700)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        try:
            self.changed = [
                str(origin / rel)
                for origin, digests in self._digests
                for rel in sorted(_differences(origin, digests, self.bytecode))
            ]
        finally:
            _remove(self.root)


def _copy_tree(source: Path, dest: Path, bytecode: bool) -> dict[str, str]:
    """Copy ``source`` into ``dest`` (merged with what is there: a later layer wins, as Lambda extracts them);
    the digest of every file and link of ``source`` by relative path, read once for both."""
    digests: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(source):
        here = Path(dirpath)
        rel_dir = here.relative_to(source)
        (dest / rel_dir).mkdir(parents=True, exist_ok=True)
        for name in list(dirnames):
            if (here / name).is_symlink():
                dirnames.remove(name)
                filenames.append(name)
            elif not bytecode and name == "__pycache__":
                dirnames.remove(name)
        for name in filenames:
            origin, rel = here / name, (rel_dir / name).as_posix()
            target = dest / rel_dir / name
            if target.is_symlink() or target.exists():
                target.unlink()
            if origin.is_symlink():
                link = os.readlink(origin)
                target.symlink_to(link)
                digests[rel] = "link:" + link
                continue
            digest = hashlib.sha256()
            with origin.open("rb") as src, target.open("wb") as out:
                while chunk := src.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
            shutil.copystat(origin, target)
            digests[rel] = digest.hexdigest()
    return digests


def _differences(origin: Path, digests: dict[str, str], bytecode: bool) -> set[str]:
    """The relative paths whose file is gone, new or different under ``origin`` (compared with ``digests``)."""
    now: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(origin):
        here = Path(dirpath)
        if not bytecode and "__pycache__" in dirnames:
            dirnames.remove("__pycache__")
        for name in [*filenames, *(d for d in dirnames if (here / d).is_symlink())]:
            path = here / name
            rel = path.relative_to(origin).as_posix()
            if path.is_symlink():
                now[rel] = "link:" + os.readlink(path)
            else:
                digest = hashlib.sha256()
                with path.open("rb") as file:
                    while chunk := file.read(1 << 20):
                        digest.update(chunk)
                now[rel] = digest.hexdigest()
    return {rel for rel in digests.keys() | now.keys() if digests.get(rel) != now.get(rel)}


def _read_only(folder: Path) -> None:
    """Files and folders without write permission, as Lambda's /var/task and /opt."""
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in [*filenames, *dirnames]:
            path = Path(dirpath) / name
            if not path.is_symlink():
                mode = path.stat().st_mode
                path.chmod(stat.S_IMODE(mode) & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    folder.chmod(0o555)


def _remove(folder: Path) -> None:
    """Remove ``folder``, read-only parts included."""
    if not folder.exists():
        return
    for dirpath, dirnames, _ in os.walk(folder):
        for name in dirnames:
            path = Path(dirpath) / name
            if not path.is_symlink():
                path.chmod(0o700)
    folder.chmod(0o700)
    shutil.rmtree(folder, ignore_errors=True)
