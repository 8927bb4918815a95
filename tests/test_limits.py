"""Limits stated are limits kept: as many builds at once as there are cores, boolean variables read one
way, a build cache others can write refused, the policy report kept inside the cloud assembly."""

from __future__ import annotations

import grp
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from aws_cdk import App, Aspects, Stack
from conftest import add_function, synth_app
from pydantic import ValidationError

from cdk_uv_aspect import PolicyOptions, UvPolicyChecks
from cdk_uv_aspect._cache import private_dir
from cdk_uv_aspect._errors import SettingError, ToolError
from cdk_uv_aspect._options import UvOptions, env_flag
from cdk_uv_aspect._runner import cores
from cdk_uv_aspect._uv import Uv

# --- as many at once as there are cores -----------------------------------------------------------


def many_packages_workspace(root: Path, count: int, backend: str = "hatchling") -> Path:
    """A workspace whose package `fn` depends on `count` local libraries (p0, p1...), locked; their
    build backend is hatchling, or setuptools (built by one `uv build` each, not in one backend process)."""
    system = {
        "hatchling": 'requires = ["hatchling"]\nbuild-backend = "hatchling.build"\n',
        "setuptools": 'requires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n',
    }[backend]
    members = [f"p{i}" for i in range(count)]
    (root / "packages").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[tool.uv.workspace]\nmembers = ["packages/*"]\n')
    for name, deps in [*((m, []) for m in members), ("fn", members)]:
        folder = root / "packages" / name
        (folder / "src" / name).mkdir(parents=True)
        handler = "\n\ndef main(event, context):\n    return NAME\n"  # the handler the function names
        (folder / "src" / name / "__init__.py").write_text(f"NAME = {name!r}\n{handler}")
        sources = "".join(f"{d} = {{ workspace = true }}\n" for d in deps)
        (folder / "pyproject.toml").write_text(
            f'[project]\nname = "{name}"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
            f"dependencies = {deps!r}\n"
            f"[tool.uv.sources]\n{sources}"
            f"[build-system]\n{system}"
        )
    subprocess.run([Uv.locate(None).path, "lock", "--quiet"], cwd=root, check=True)
    return root


def uv_builds_running(token: str) -> int:
    """How many `uv build` processes carrying ``token`` in their environment run now. A child of one with
    the same command line is uv forking before it starts the build backend: the same build, not counted."""
    found: dict[str, str] = {}  # pid -> parent pid
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            ours = len(argv) > 1 and argv[0].endswith(b"uv") and argv[1] == b"build"
            if ours and token.encode() in (entry / "environ").read_bytes():
                found[entry.name] = (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
        except (OSError, IndexError):
            continue
    return sum(parent not in found for parent in found.values())


@pytest.mark.slow
def test_a_closure_of_many_local_packages_builds_as_many_at_once_as_there_are_cores(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    """8 local packages in one closure, of a backend built by one `uv build` each (setuptools): every wheel
    is built, never more `uv build` processes at once than cores (the README's promise), and more than one
    when there are cores for it."""
    workspace = many_packages_workspace(tmp_path / "ws", 8, backend="setuptools")
    token = f"CDK_UV_TEST_{uuid.uuid4().hex}"
    monkeypatch.setenv(token, "1")
    peak, done = 0, threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, uv_builds_running(token))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        synth_app(workspace, lambda s: add_function(s, "Fn", "fn", handler="fn.main"), bytecode=False)
    finally:
        done.set()
        watcher.join()
    wheels = sorted(p.name.split("-")[0] for p in (cache_dir / "wheels").iterdir())
    assert wheels == sorted(["fn", *(f"p{i}" for i in range(8))])
    assert 1 <= peak <= cores(), f"{peak} uv build processes at once on {cores()} cores"
    if cores() >= 2:
        assert peak >= 2, "the local packages were built one after the other"


# --- boolean variables, one way -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "meaning"),
    [
        ("1", True),
        ("true", True),
        ("TRUE", True),
        ("yes", True),
        ("On", True),
        (" on ", True),
        ("0", False),
        ("false", False),
        ("no", False),
        ("OFF", False),
        ("", False),
        (None, False),
    ],
)
def test_boolean_variables_are_read_one_way(monkeypatch: pytest.MonkeyPatch, value: str | None, meaning: bool):
    """1/true/yes/on and 0/false/no/off/empty/unset, any case: CDK_UV_REBUILD and env_flag agree."""
    if value is None:
        monkeypatch.delenv("CDK_UV_REBUILD", raising=False)
    else:
        monkeypatch.setenv("CDK_UV_REBUILD", value)
    assert env_flag("CDK_UV_REBUILD") is meaning
    assert UvOptions().rebuild is meaning


@pytest.mark.parametrize("value", ["2", "maybe", "y", "enable", "-1", "truee"])
def test_a_boolean_variable_that_is_neither_is_refused(monkeypatch: pytest.MonkeyPatch, value: str):
    """Not silently on (as "maybe" was) or off: refused, naming the variable, its value and what it takes."""
    monkeypatch.setenv("CDK_UV_REBUILD", value)
    with pytest.raises(SettingError) as error:
        UvOptions()
    message = str(error.value)
    assert f"$CDK_UV_REBUILD is {value!r}" in message and "1, true, yes or on" in message and "fix:" in message


# --- a build cache others can write is refused ----------------------------------------------------


def test_a_cache_root_others_can_write_is_refused(tmp_path: Path):
    """builds/ is private, but the cache root above it is writable by all: whoever can write there can
    replace builds/ whole. Refused, as docs/reliability.md promises (only builds/ was checked before)."""
    root = tmp_path / "shared"
    (root / "builds").mkdir(parents=True, mode=0o700)
    root.chmod(0o777)
    with pytest.raises(ToolError, match=r"(?s)the build cache .*shared is not private.*chmod go-w"):
        private_dir(root / "builds")


def test_a_folder_of_the_cache_others_can_write_is_refused(tmp_path: Path):
    root = tmp_path / "cache"
    (root / "wheels").mkdir(parents=True, mode=0o700)
    root.chmod(0o700)
    (root / "wheels").chmod(0o757)
    with pytest.raises(ToolError, match="wheels is not private"):
        private_dir(root / "wheels")


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another group needs root")
def test_a_cache_its_group_can_write_is_refused_unless_the_group_is_the_users_own(tmp_path: Path):
    """Group-writable: refused for a group with other users, accepted for the user's own private group
    (umask 002 systems make folders so)."""
    shared_group = next(g for g in grp.getgrall() if g.gr_gid != os.getgid())
    root = tmp_path / "cache"
    root.mkdir(mode=0o700)
    root.chmod(0o770)
    os.chown(root, os.getuid(), shared_group.gr_gid)
    with pytest.raises(ToolError, match="is not private"):
        private_dir(root / "builds")
    os.chown(root, os.getuid(), os.getgid())  # root's own group: no other member here
    assert private_dir(root / "builds").is_dir()


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a folder's owner needs root")
def test_a_cache_root_linked_to_another_users_folder_is_refused(tmp_path: Path):
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 12345, 12345)
    (tmp_path / "cache").symlink_to(theirs)
    with pytest.raises(ToolError, match=r"(?s)cache \(a link to .*theirs\) is not private.*another user"):
        private_dir(tmp_path / "cache" / "builds")


def test_a_cache_under_a_folder_others_can_write_is_accepted(tmp_path: Path):
    """A CI checkout is often writable by all (GitLab's runner uses umask 0000): the cache's own folders
    are made private, and a folder put in their place by someone else would be theirs, and refused."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    checkout.chmod(0o777)
    builds = private_dir(checkout / ".cache" / "cdk-uv" / "builds")
    assert (builds.stat().st_mode & 0o777, builds.parent.stat().st_mode & 0o777) == (0o700, 0o700)


# --- the policy report stays in the cloud assembly ------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "../outside.json",
        "/tmp/outside.json",
        "sub/report.json",
        "..",
        ".hidden.json",
        "",
        "report.txt",
        "manifest.json",
        "tree.json",
        "Stack.template.json",
        "Stack.assets.json",
        "Stack.metadata.json",
        "report.json\n",
    ],
)
def test_a_report_name_that_would_leave_the_assembly_or_replace_the_cdks_files_is_refused(name: str):
    with pytest.raises(ValidationError, match=r"report must be a file name ending in \.json"):
        PolicyOptions(report=name)


@pytest.mark.slow
def test_the_report_is_written_into_the_assembly_under_its_name(workspace: Path, cache_dir: Path, tmp_path: Path):
    out = tmp_path / "out"

    def populate(stack: Stack) -> None:
        add_function(stack, "Api", "api")
        Aspects.of(stack).add(UvPolicyChecks(report="policy.json"))

    synth_app(workspace, populate, outdir=out)
    assert (out / "policy.json").is_file()
    assert not (tmp_path / "policy.json").exists()


def test_the_default_report_name_is_accepted():
    assert PolicyOptions().report == "uv-policy-report.json"
    assert PolicyOptions(report=None).report is None
    App()  # no side effect of importing the checks


# --- memory: files are read in pieces -------------------------------------------------------------

PEAK_OF_FINGERPRINT = """
import resource, sys
from pathlib import Path
from cdk_uv_aspect._workspace import Workspace
workspace = Workspace.find(Path(sys.argv[1]))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
workspace.fingerprint("common")
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


def test_fingerprinting_a_big_file_reads_it_in_pieces(workspace: Path):
    """A 512 MiB data file in a package (never shipped: hatchling packs src/ only) is hashed without
    holding it in memory: the process's peak grows by far less than the file (it grew by the whole file)."""
    big = workspace / "packages" / "common" / "data" / "model.bin"
    big.parent.mkdir()
    with open(big, "wb") as f:
        f.truncate(512 * 1024 * 1024)  # sparse: no disk used, every byte read all the same
    done = subprocess.run(
        [sys.executable, "-c", PEAK_OF_FINGERPRINT, str(workspace)], capture_output=True, text=True, check=True
    )
    grew = int(done.stdout)
    assert grew < 64 * 1024 * 1024, f"the peak grew by {grew / 2**20:.0f} MiB while fingerprinting a 512 MiB file"
