"""An entry of the build cache as one object and back (``_pack``): the same bytes from any machine, and
nothing in a hostile object reaches the file system outside the entry or passes its manifest."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest

from cdk_uv_aspect import _cache
from cdk_uv_aspect._pack import NotShareable, Refused, pack, unpack


def make_entry(folder: Path, *, umask_mode: int = 0o644) -> tuple[Path, dict]:
    """An entry as a build writes it: asset/ (a package, a native tool), an SBOM beside it, build.json."""
    asset = folder / "asset"
    (asset / "api").mkdir(parents=True)
    (asset / "api" / "__init__.py").write_text("")
    (asset / "api" / "handler.py").write_text("def main(event, context):\n    return 1\n")
    (asset / "api" / "tool").write_bytes(b"\x7fELF" + bytes(range(256)) * 40)
    (asset / "api" / "tool").chmod(0o755)
    (asset / "empty").mkdir()
    for path in (p for p in asset.rglob("*") if p.is_file() and p.name != "tool"):
        path.chmod(umask_mode)
    sbom = b'{"bomFormat": "CycloneDX"}\n'
    (folder / "sbom.cdx.json").write_bytes(sbom)
    info = {
        "package": "api",
        "target": "python3.12-x86_64",
        "beside": {"sbom.cdx.json": hashlib.sha256(sbom).hexdigest()},
        "manifest": _cache.manifest(asset),
    }
    _cache.write_info(folder, info)
    return folder, info


def packed(entry: Path, info: dict) -> bytes:
    out = io.BytesIO()
    pack(entry, info, out)
    return out.getvalue()


def tree(folder: Path) -> dict[str, tuple[str, bytes | None]]:
    return {
        p.relative_to(folder).as_posix(): (oct(p.stat().st_mode & 0o777), p.read_bytes() if p.is_file() else None)
        for p in sorted(folder.rglob("*"))
    }


def test_an_entry_packs_to_the_same_bytes_on_any_machine(tmp_path: Path):
    """Other mtimes, another umask's modes, another folder: the same object, so racing writers agree."""
    first = make_entry(tmp_path / "a")
    second = make_entry(tmp_path / "b", umask_mode=0o600)
    for path in (tmp_path / "b").rglob("*"):
        os.utime(path, (1_000_000, 1_000_000))
    second[1]["manifest"] = _cache.manifest(tmp_path / "b" / "asset")
    assert packed(*first) == packed(*second)


def test_an_unpacked_entry_is_the_entry_and_passes_the_local_checks(tmp_path: Path):
    """Files, contents, folders (an empty one too) and modes come back; its manifest holds this machine's
    mtimes, so the local cache uses it without hashing it again."""
    entry, info = make_entry(tmp_path / "a")
    work = tmp_path / "work"
    work.mkdir()
    got = unpack(io.BytesIO(packed(entry, info)), work)
    _cache.write_info(work, got)
    original = tree(entry)
    original.pop("build.json")
    unpacked = tree(work)
    unpacked.pop("build.json")
    assert unpacked == {k: ("0o755" if v[1] is None else v[0], v[1]) for k, v in original.items()}
    assert unpacked["asset/api/tool"][0] == "0o755" and unpacked["asset/api/handler.py"][0] == "0o644"
    assert got["manifest"] == _cache.manifest(work / "asset")  # mtimes of here: the stat check passes
    assert _cache.verify(work, got)


def test_an_entry_with_a_link_is_not_shared(tmp_path: Path):
    entry, info = make_entry(tmp_path / "a")
    (entry / "asset" / "link").symlink_to("api/handler.py")
    with pytest.raises(NotShareable, match="asset/link"):
        packed(entry, info)


def hostile(members: list[tuple[tarfile.TarInfo, bytes | None]], info: dict | None = None) -> bytes:
    """A tar.gz with ``build.json`` (``info``, if given) first, then ``members`` as given."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb") as compressed, tarfile.open(fileobj=compressed, mode="w") as archive:
        if info is not None:
            data = json.dumps(info).encode()
            member = tarfile.TarInfo("build.json")
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
        for member, data in members:
            archive.addfile(member, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def file_member(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    member = tarfile.TarInfo(name)
    member.size = len(data)
    return member, data


def special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    member = tarfile.TarInfo(name)
    member.type, member.linkname = kind, linkname
    return member, None


PAYLOAD = b"import os\n"
INFO = {
    "package": "api",
    "manifest": {"api/x.py": [len(PAYLOAD), 0, hashlib.sha256(PAYLOAD).hexdigest()]},
}


@pytest.mark.parametrize(
    ("members", "info", "why"),
    [
        ([special("asset/api/x.py", tarfile.SYMTYPE, "/etc/passwd")], INFO, "link or a special file"),
        ([special("asset/api/x.py", tarfile.LNKTYPE, "/etc/passwd")], INFO, "link or a special file"),
        ([special("asset/api/x.py", tarfile.CHRTYPE)], INFO, "link or a special file"),
        ([special("asset/api/x.py", tarfile.FIFOTYPE)], INFO, "link or a special file"),
        ([file_member("/tmp/escaped", PAYLOAD)], INFO, "not a plain relative path"),
        ([file_member("asset/../../escaped", PAYLOAD)], INFO, "not a plain relative path"),
        ([file_member("asset/api/x.py", PAYLOAD), file_member("../escaped", PAYLOAD)], INFO, "plain relative path"),
        ([file_member("asset/api/x.py", b"import oz\n")], INFO, "does not match its manifest"),  # one byte
        ([file_member("asset/api/x.py", PAYLOAD + b"#")], INFO, "has 11 bytes, its manifest says 10"),
        ([file_member("asset/api/x.py", PAYLOAD), file_member("asset/api/y.py", PAYLOAD)], INFO, "not in its manifest"),
        ([file_member("asset/api/x.py", PAYLOAD), file_member("asset/api/x.py", PAYLOAD)], INFO, "comes twice"),
        ([], INFO, "missing, e.g. asset/api/x.py"),
        ([file_member("escaped.txt", PAYLOAD)], INFO, "neither in asset/"),
        ([file_member("asset/api/x.py", PAYLOAD)], None, "first member is not build.json"),
        (
            [file_member("asset/api/x.py", PAYLOAD)],
            {**INFO, "manifest": {"../../escaped": INFO["manifest"]["api/x.py"]}},
            "not a plain relative path",
        ),
        (
            [file_member("asset/api/x.py", PAYLOAD)],
            {**INFO, "beside": {"../escaped": "0" * 64}},
            "not plain file names",
        ),
        ([file_member("asset/api/x.py", PAYLOAD)], {"manifest": INFO["manifest"]}, "does not name a package"),
        (
            [file_member("asset/api/x.py", PAYLOAD)],
            {**INFO, "manifest": {**INFO["manifest"], "big": [11 << 30, 0, "0" * 64]}},
            "more than 10 GiB",
        ),
    ],
    ids=[
        "symlink",
        "hard link",
        "device",
        "fifo",
        "absolute path",
        "dot-dot",
        "dot-dot after a good file",
        "one byte changed",
        "longer than its manifest",
        "file not in its manifest",
        "duplicate",
        "missing file",
        "file outside asset",
        "no manifest first",
        "manifest naming dot-dot",
        "beside naming dot-dot",
        "manifest of no package",
        "a disk's worth",
    ],
)
def test_a_hostile_or_damaged_object_is_refused_and_writes_nothing_outside(tmp_path: Path, members, info, why):
    """Links, devices, absolute paths, ``..``, files the manifest does not list or lists otherwise."""
    work = tmp_path / "cache" / "builds" / ".work"
    work.mkdir(parents=True)
    before = {p for p in tmp_path.rglob("*")}
    with pytest.raises(Refused, match=why.replace("(", r"\(")):
        unpack(io.BytesIO(hostile(members, info)), work)
    outside = {p for p in tmp_path.rglob("*") if not p.is_relative_to(work)} - before
    assert outside == set()
    assert not any(p.is_symlink() or not (p.is_dir() or p.is_file()) for p in work.rglob("*"))


def test_an_object_that_is_not_a_whole_tar_gz_is_refused(tmp_path: Path):
    entry, info = make_entry(tmp_path / "a")
    whole = packed(entry, info)
    for broken, why in ((b"not a tarball", "not a whole tar.gz"), (whole[: len(whole) // 2], "missing|not a whole")):
        work = tmp_path / f"work-{len(broken)}"
        work.mkdir()
        with pytest.raises(Refused, match=why):
            unpack(io.BytesIO(broken), work)


def test_a_file_and_a_folder_of_one_name_is_refused(tmp_path: Path):
    folder = tarfile.TarInfo("asset/api/x.py")
    folder.type = tarfile.DIRTYPE
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(Refused):
        unpack(io.BytesIO(hostile([file_member("asset/api/x.py", PAYLOAD), (folder, None)], INFO)), work)
    assert stat.S_ISREG((work / "asset" / "api" / "x.py").lstat().st_mode)
