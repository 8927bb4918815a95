"""Every failure names its cause: the file system's (a cache path that is a file, a read-only or full
disk, an unwritable HOME) and uv's (DNS, refused, TLS, hash mismatch, a build backend), each with its own
message and fix, and the lines of uv's output that name the cause are kept, however long it is."""

from __future__ import annotations

import contextlib
import datetime
import errno
import http.server
import os
import re
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import add_function, assert_complete_error, synth_error

from cdk_uv_aspect._errors import FileError, ToolError
from cdk_uv_aspect._files import file_error
from cdk_uv_aspect._runner import Result, kept_lines

pytestmark = pytest.mark.oldest_uv  # uv's error output: also on the oldest uv

AL2023_X86 = "python3.12 x86_64 (Amazon Linux 2023, glibc 2.34)"
# What each kind of failure says; a failure of one kind must not say another's.
SAYS = {
    "dns": "could not resolve its host name (DNS)",
    "refused": "could not connect to it (refused or unreachable)",
    "tls": "did not trust its TLS certificate",
    "hash": "does not have a hash that uv.lock records",
    "stale": "uv.lock is out of date",
    "backend": "the build backend of the workspace package",
    "offline": "network access is off",
}


def api(stack):
    return add_function(stack, "Api", "api")


def assert_only(message: str, kind: str) -> None:
    """``message`` says what ``kind`` of failure says, and nothing another kind would."""
    assert SAYS[kind] in message, message
    others = [text for other, text in SAYS.items() if other != kind and text in message]
    assert others == [], f"a {kind} failure also says {others}:\n{message}"


# --- uv's output: the cause is kept ---------------------------------------------------------------


def test_the_lines_that_name_the_cause_survive_a_long_output():
    """uv's "Hash mismatch" followed by 60 expected hashes: the cause and the package stay in the message
    (only the last 40 lines were kept before), and what is left out is said."""
    hashes = [f"           sha256:{i:064x}" for i in range(60)]
    stderr = "\n".join(
        [
            "error: Failed to download `orjson==3.13.0`",
            "  cause: Hash mismatch for `orjson==3.13.0`",
            "",
            "         Expected:",
            *hashes,
            "",
            "         Computed:",
            "           sha256:bceadfd314bd238f584fc229a4bbaf0e573597e7a026dec5429fbf29fd66c641",
        ]
    )
    shown = Result(("uv", "pip", "install"), 1, "", stderr).describe()
    assert "error: Failed to download `orjson==3.13.0`" in shown
    assert "cause: Hash mismatch for `orjson==3.13.0`" in shown
    assert re.search(r"\[\.\.\. \d+ lines left out \.\.\.\]", shown)
    assert "Computed:" in shown and hashes[-1].strip() in shown and hashes[0].strip() not in shown


def test_a_short_output_is_shown_whole():
    lines = [f"line {i}" for i in range(40)]
    assert kept_lines("\n".join(lines)) == lines


# --- the file system ------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_cache_path_that_is_a_file_is_named(workspace: Path, tmp_path: Path):
    """CDK_UV_CACHE_DIR pointing at a file: which path, why, and where to point it instead."""
    cache = tmp_path / "cache"
    cache.write_text("not a folder")
    message = synth_error(workspace, api, cache_dir=cache)
    assert_complete_error(
        message,
        construct="Stack/Api",
        package="api",
        target=AL2023_X86,
        fix="remove or rename that file, or point the build cache at another folder",
        also=[f"the build cache can't be created at {cache}/builds", "a file where a folder is needed"],
    )
    assert "Traceback" not in message and "FileExistsError" not in message


@pytest.mark.slow
def test_an_unwritable_home_is_named_for_the_build_cache_and_for_uvs(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """HOME is a file: the default build cache can't be made there (named, with the variable to set); with
    the build cache elsewhere, uv's own cache under HOME fails next (named, with UV_CACHE_DIR). The path is
    longer than the terminal of a CI runner is wide (COLUMNS=80), where uv would wrap it."""
    home = tmp_path / ("a-long-folder-name-" * 4) / "home"
    home.parent.mkdir()
    home.write_text("")
    monkeypatch.setenv("COLUMNS", "80")
    for variable in ("CDK_UV_CACHE_DIR", "XDG_CACHE_HOME", "UV_CACHE_DIR"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HOME", str(home))
    message = synth_error(workspace, api)
    assert_complete_error(
        message,
        construct="Stack/Api",
        package="api",
        target=AL2023_X86,
        fix="$CDK_UV_CACHE_DIR",
        also=[f"the build cache can't be created at {home}/.cache/cdk-uv-aspect/builds"],
    )
    monkeypatch.setenv("CDK_UV_CACHE_DIR", str(tmp_path / "cache"))
    message = synth_error(workspace, api)
    assert_complete_error(
        message,
        construct="Stack/Api",
        package="api",
        target=AL2023_X86,
        fix="UV_CACHE_DIR=<a writable folder>",
        also=[f"uv could not use its cache at {home}/.cache/uv"],
    )


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A small file system of its own at ``where`` (needs the right to mount; skipped without it)."""
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not allowed here: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.mark.slow
def test_a_read_only_build_cache_is_named(workspace: Path, tmp_path: Path):
    with tmpfs(tmp_path / "cache", "10m") as cache:
        (cache / "builds").mkdir(mode=0o700)
        (cache / "wheels").mkdir(mode=0o700)
        cache.chmod(0o700)
        subprocess.run(["mount", "-o", "remount,ro", str(cache)], check=True)
        message = synth_error(workspace, api, cache_dir=cache)
    assert_complete_error(
        message,
        construct="Stack/Api",
        package="api",
        target=AL2023_X86,
        fix="point the build cache at another folder",
        also=["read-only", str(cache)],
    )
    assert "this is a bug in cdk-uv-aspect" not in message


@pytest.mark.slow
def test_a_full_build_cache_is_named(workspace: Path, tmp_path: Path):
    """The disk runs full in the middle of a build (uv's writes or ours): said so, with how to make room."""
    with tmpfs(tmp_path / "cache", "256k") as cache:
        cache.chmod(0o700)
        message = synth_error(workspace, api, cache_dir=cache)
    assert_complete_error(message, construct="Stack/Api", package="api", target=AL2023_X86, fix="free space")
    assert "full" in message and "cdk-uv cache prune" in message
    assert "this is a bug in cdk-uv-aspect" not in message


def fill(folder: Path, leave: int) -> None:
    """Fill the file system of ``folder`` until about ``leave`` bytes are free."""
    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    with open(folder / "filler", "wb") as f, contextlib.suppress(OSError):
        f.write(b"\0" * max(free - leave, 0))


@pytest.mark.slow
def test_a_build_cache_with_16_kib_free_names_the_cache_not_the_error_text(workspace: Path, tmp_path: Path):
    """With 16 KiB free, a write fails with no path in the error: the message names the build cache where
    the path goes (it said "the disk is full (or over quota) at No space left on device")."""
    with tmpfs(tmp_path / "cache", "4m") as cache:
        cache.chmod(0o700)
        fill(cache, 16 * 1024)
        message = synth_error(workspace, api, cache_dir=cache)
    assert_complete_error(
        message,
        construct="Stack/Api",
        package="api",
        target=AL2023_X86,
        fix="free space",
        also=["the disk is full", str(cache)],
    )
    assert "at No space left on device" not in message and "at [Errno" not in message


def test_a_full_disk_error_without_a_path_names_the_folder_being_written():
    """An OSError from a write carries no file name: the folder being written takes the path's place."""
    cache = Path("/somewhere/cache")
    error = file_error(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), cache_dir=cache)
    assert f"the disk is full (or over quota) in {cache}" in error.problem, error.problem
    assert os.strerror(errno.ENOSPC) not in error.problem.split(" in ")[0]
    assert "cdk-uv cache prune" in error.fix
    elsewhere = file_error(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), where=Path("/x/cdk.out"))
    assert "/x/cdk.out" in elsewhere.problem and "cdk-uv cache prune" not in elsewhere.fix


def test_a_name_too_long_says_which_name_and_a_fix_that_helps(tmp_path: Path):
    """A file name over 255 bytes can't be helped by a shorter path: the message names it and says to
    shorten that name; a path over the system's limit made of short names is told to be shortened."""
    long_name = "a" * 300
    error = file_error(OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG), str(tmp_path / long_name / "x")))
    assert f"the name {long_name!r}" in error.problem and "255 bytes" in error.problem
    assert "shorter name" in error.fix and "use a shorter path" not in error.fix
    deep = tmp_path.joinpath(*["folder"] * 700)
    error = file_error(OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG), str(deep)))
    assert "the path is too long" in error.problem and "use a shorter path" in error.fix


@pytest.mark.parametrize(
    ("message", "path"),
    [
        ("Error: ENOSPC: no space left on device, write", None),
        (
            "ENOSPC: no space left on device, copyfile '/c/builds/x/asset/a.so' -> '/o/asset.ab/a.so'",
            "/o/asset.ab/a.so",
        ),
        ("EROFS: read-only file system, mkdir '/o/asset.ab'", "/o/asset.ab"),
        ("ValidationError: not a file system error", ""),
    ],
)
def test_nodes_file_system_errors_are_read_as_what_they_are(message: str, path: str | None):
    """The CDK's staging fails in node: its "ENOSPC: ..., write" (no path) and its "copyfile 'a' -> 'b'"
    become the OSError they stand for, the path written if named; anything else is not one."""
    from cdk_uv_aspect._swap import node_error

    failure = node_error(message)
    if path == "":
        assert failure is None
        return
    assert failure is not None and failure.errno in (errno.ENOSPC, errno.EROFS) and failure.filename == path
    error = file_error(failure, where=Path("/o"))
    assert (path or "in /o") in error.problem


@pytest.mark.slow
def test_a_full_disk_under_cdk_out_is_named_with_the_path(workspace: Path, cache_dir: Path, tmp_path: Path):
    """cdk.out on a disk too small for the asset: our message, naming the asset folder, the function, the
    package, the target and the fix (it was the CDK's bare "ENOSPC" with no path)."""
    with tmpfs(tmp_path / "out", "160k") as out:
        message = synth_error(workspace, api, outdir=out)
    assert_complete_error(
        message,
        construct="Stack/Api",
        package="api",
        target=AL2023_X86,
        fix="free space",
        also=["the disk is full", f"{out}/asset."],
    )
    assert "cdk synth --output" in message and "cdk-uv cache prune" not in message  # not the build cache


def test_a_copy_that_failed_names_the_file_and_the_fix(tmp_path: Path):
    """shutil.copytree's list of failures (here a dangling link) becomes one error naming the first file."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "gone.py").symlink_to("missing.py")
    with pytest.raises(shutil.Error) as copying:
        shutil.copytree(source, tmp_path / "dst", symlinks=False)
    error = file_error(copying.value, cache_dir=tmp_path / "cache")
    assert isinstance(error, FileError)
    assert str(source / "gone.py") in error.problem and "fix:" in str(error)


@pytest.mark.parametrize(
    ("code", "says", "fix"),
    [
        (errno.ENOSPC, "the disk is full", "cdk-uv cache prune"),
        (errno.EDQUOT, "over quota", "free space"),
        (errno.EROFS, "read-only", "mount it writable"),
        (errno.EACCES, "permission denied", "writable for this user"),
        (errno.ENOTDIR, "a file where a folder is needed", "remove or rename that file"),
        (errno.ELOOP, "a link loop", "remove the link"),
        (errno.ENAMETOOLONG, "too long", "shorter path"),
    ],
)
def test_each_failure_of_the_file_system_has_its_own_message(tmp_path: Path, code: int, says: str, fix: str):
    """The errno decides the message; a path in the build cache adds how to move the cache."""
    cache = tmp_path / "cache"
    error = file_error(OSError(code, os.strerror(code), str(cache / "builds" / "x")), cache_dir=cache)
    assert says in error.problem and str(cache / "builds" / "x") in error.problem
    assert fix in error.fix and "$CDK_UV_CACHE_DIR" in error.fix


# --- uv's failures, each with its own message -----------------------------------------------------


@contextlib.contextmanager
def tls_index(tmp_path: Path) -> Iterator[str]:
    """An HTTPS server on loopback whose certificate no one trusts (self-signed): its index URL."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://localhost:{server.server_address[1]}/simple"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["dns", "refused", "tls"])
def test_a_network_failure_says_which_one(
    workspace: Path, cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
):
    """An index whose name does not resolve, one that refuses connections, one whose certificate is not
    trusted: under the default lock="locked" each says what went wrong with the index, not "run uv lock",
    and not "offline"."""
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "cold-uv-cache"))
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")
    with contextlib.ExitStack() as stack:
        url = {
            "dns": "http://no-such-index.invalid/simple",
            "refused": "http://127.0.0.1:1/simple",
            "tls": stack.enter_context(tls_index(tmp_path)) if kind == "tls" else "",
        }[kind]
        monkeypatch.setenv("UV_DEFAULT_INDEX", url)
        message = synth_error(workspace, api)
    fix = {"dns": "the machine's DNS", "refused": "UV_DEFAULT_INDEX", "tls": "UV_NATIVE_TLS=1"}[kind]
    assert_complete_error(
        message,
        construct="Stack/Api",
        package="api",
        target=AL2023_X86,
        fix=fix,
        also=[f"uv needed the package index ({url.removesuffix('/simple')})"],
    )
    assert_only(message, kind)
    assert "run `uv lock`" not in message


@pytest.mark.slow
def test_a_tampered_lock_is_a_hash_mismatch_naming_the_package(
    workspace: Path, cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Every orjson hash in uv.lock replaced: the error names orjson and the hash mismatch (kept although
    uv lists every expected hash after it), and says to check uv.lock and the index."""
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "cold-uv-cache"))
    lock = workspace / "uv.lock"
    text = lock.read_text()
    start = text.index('[[package]]\nname = "orjson"')
    end = text.find("[[package]]", start + 1) % (len(text) + 1)
    tampered = re.sub(r"sha256:[0-9a-f]{64}", "sha256:" + "0" * 64, text[start:end])
    lock.write_text(text[:start] + tampered + text[end:])
    assert tampered.count("sha256:" + "0" * 64) > 10
    message = synth_error(workspace, api)
    assert_complete_error(
        message,
        construct="Stack/Api",
        package="api",
        target=AL2023_X86,
        fix="git diff uv.lock",
        also=["orjson==", "Hash mismatch for `orjson=="],
    )
    assert_only(message, "hash")
    assert lock.read_text() == text[:start] + tampered + text[end:]  # the user's lock is never touched


@pytest.mark.slow
def test_a_failing_build_backend_shows_its_own_message(workspace: Path, cache_dir: Path):
    """A build hook that raises: the error names the package and the backend, and shows the hook's own
    message, which `uv build --quiet` used to hide."""
    common = workspace / "packages" / "common"
    with (common / "pyproject.toml").open("a") as f:
        f.write("\n[tool.hatch.build.hooks.custom]\n")
    (common / "hatch_build.py").write_text(
        "from hatchling.builders.hooks.plugin.interface import BuildHookInterface\n"
        "class CustomBuildHook(BuildHookInterface):\n"
        "    def initialize(self, version, build_data):\n"
        "        raise RuntimeError('protoc not found: install protobuf-compiler')\n"
    )
    message = synth_error(workspace, api)
    assert_complete_error(
        message,
        construct="Stack/Api",
        package="api",
        target=AL2023_X86,
        fix="fix the error the backend reports below",
        also=[
            "the build backend of the workspace package common failed (hatchling.build.build_wheel)",
            "RuntimeError: protoc not found: install protobuf-compiler",
        ],
    )
    assert_only(message, "backend")


@pytest.mark.slow
def test_a_stale_lock_is_not_taken_for_anything_else(workspace: Path, cache_dir: Path):
    pyproject = workspace / "packages" / "api" / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("orjson>=3.10", "orjson>=3.11"))
    message = synth_error(workspace, api)
    assert_complete_error(message, construct="Stack/Api", package="api", target=AL2023_X86, fix="run `uv lock`")
    assert_only(message, "stale")


def test_messages_are_plain_text_whatever_colours_a_tool_wrote():
    """uv's colour codes (when something forces them) never reach an error message."""
    error = ToolError(
        "uv said \x1b[1m\x1b[31merror\x1b[39m\x1b[0m\x1b[1m:\x1b[0m no",
        fix="fix it",
        details="  | \x1b[2mUsing CPython 3.12.1\x1b[0m\n  | \x1b]8;;https://x\x07link\x1b]8;;\x07",
    )
    assert "\x1b" not in str(error)
    assert "uv said error: no" in str(error) and "Using CPython 3.12.1" in str(error) and "link" in str(error)
