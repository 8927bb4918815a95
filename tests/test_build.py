"""Real builds with real uv from the fixture workspace: what goes into an asset, and that it runs."""

from __future__ import annotations

import marshal
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import assert_api_asset, build_of, call_handler, tree_digest

pytestmark = [pytest.mark.slow, pytest.mark.oldest_uv]

ELF_MACHINE = {62: "x86_64", 183: "aarch64"}


def files_of(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def elf_machine(path: Path) -> str:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF"
    return ELF_MACHINE.get(int.from_bytes(header[18:20], "little"), "other")


def test_library_package_ships_its_runtime_closure_only(shared_build):
    """The package, its workspace dependency and orjson; no dev group, scripts or installer metadata."""
    asset = shared_build("api").asset_dir
    files = files_of(asset)
    tops = {f.split("/")[0] for f in files}
    assert {"api", "common", "orjson"} <= tops
    assert not any(t.startswith("iniconfig") for t in tops), "the dev group was installed"
    assert "bin" not in tops and ".lock" not in tops
    assert not any(f.endswith(("/INSTALLER", "/REQUESTED", "/direct_url.json", ".pth")) for f in files)
    record = next(asset.glob("api-*.dist-info/RECORD")).read_text()
    assert "bin/" not in record and "api/handler.py" in record


def test_record_lists_only_files_in_the_asset(shared_build):
    """Every RECORD line names a file inside the asset (no script, no path outside)."""
    asset = shared_build("api").asset_dir
    for record in asset.glob("*.dist-info/RECORD"):
        for line in record.read_text().splitlines():
            path = line.rsplit(",", 2)[0]
            assert (asset / path).resolve().is_relative_to(asset.resolve()), line
            assert (asset / path).is_file(), line


@pytest.mark.parametrize("python", ["3.11", "3.12"])
def test_handler_answers_from_the_asset_alone(shared_build, python: str):
    """The runtime's interpreter, only the asset and the stdlib importable: the handler answers."""
    built = shared_build("api", python=python)
    answer = call_handler(built.asset_dir, "api.handler.main", python, {"name": "lambda"})
    assert answer.ok, answer.result
    assert answer.result == {"message": "hello lambda", "version": "0.1.0"}


def test_application_package_modules_go_to_the_asset_root(shared_build):
    """An app package (no build system): main.py and helpers/ at the root, tests/ left out."""
    built = shared_build("app", python="3.12")
    files = files_of(built.asset_dir)
    assert {"main.py", "helpers/__init__.py", "helpers/text.py"} <= files
    assert not any(f.startswith("tests/") for f in files)
    answer = call_handler(built.asset_dir, "main.handler", "3.12", {"name": "x"})
    assert answer.result == {"message": "HELLO X!"}


def test_bytecode_is_for_the_exact_python_and_recorded_under_var_task(shared_build):
    """cpython-311 .pyc files, unchecked-hash (no timestamps), source path /var/task/..."""
    asset = shared_build("app", python="3.11").asset_dir
    pyc = asset / "helpers" / "__pycache__" / "text.cpython-311.pyc"
    data = pyc.read_bytes()
    flags = int.from_bytes(data[4:8], "little")
    assert flags == 0b01, "expected an unchecked hash-based pyc"
    assert marshal.loads(data[16:]).co_filename == "/var/task/helpers/text.py"
    assert not any(p.name.endswith(".cpython-312.pyc") for p in asset.rglob("*.pyc"))


def test_no_bytecode_when_turned_off(workspace: Path, cache_dir: Path):
    asset = build_of(workspace, "app", bytecode=False).asset_dir
    assert not list(asset.rglob("*.pyc"))


def test_arm64_build_has_only_aarch64_native_code(shared_build):
    """Cross-architecture without Docker: every shared library in the asset is an aarch64 ELF."""
    asset = shared_build("api", arch="arm64").asset_dir
    libraries = list(asset.rglob("*.so"))
    assert libraries
    assert {elf_machine(lib) for lib in libraries} == {"aarch64"}


def test_rebuild_without_cache_is_byte_identical(shared_build, workspace: Path, tmp_path: Path):
    """Two cold builds in two caches (and two checkouts) give the same files, bytes and modes."""
    first = shared_build("api").asset_dir
    second = build_of(workspace, "api", cache_dir=tmp_path / "c2").asset_dir
    assert_api_asset(first)
    assert tree_digest(first) == tree_digest(second)


def test_two_checkouts_built_at_once_give_identical_folders(workspace: Path, tmp_path: Path):
    """Two copies of a workspace at different paths, built concurrently by two processes."""
    other = tmp_path / "elsewhere" / "checkout"
    shutil.copytree(workspace, other)
    script = (
        "import sys; from pathlib import Path; from cdk_uv_aspect._build import build; "
        "from cdk_uv_aspect._request import BuildRequest; "
        "from cdk_uv_aspect._options import UvOptions; from cdk_uv_aspect._target import Target; "
        "from cdk_uv_aspect._workspace import Workspace; "
        "r = BuildRequest(Workspace.find(Path(sys.argv[1])), 'api', Target('3.12', 'arm64'), "
        "UvOptions(cache_dir=sys.argv[2])); print(build(r).asset_dir)"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(ws), str(tmp_path / f"cache{i}")], stdout=subprocess.PIPE, text=True
        )
        for i, ws in enumerate((workspace, other))
    ]
    outputs = [p.communicate(timeout=300)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert_api_asset(Path(outputs[0]))
    assert tree_digest(Path(outputs[0])) == tree_digest(Path(outputs[1]))


def test_edited_workspace_dependency_is_rebuilt_with_a_warm_uv_cache(workspace: Path, cache_dir: Path):
    """The stale-code trap: editing common's source changes api's asset even though uv has a cached wheel."""
    before = build_of(workspace, "api")
    init = workspace / "packages" / "common" / "src" / "common" / "__init__.py"
    init.write_text(init.read_text().replace('"hello"', '"howdy"'))
    after = build_of(workspace, "api")
    assert not after.cached
    assert tree_digest(before.asset_dir) != tree_digest(after.asset_dir)
    answer = call_handler(after.asset_dir, "api.handler.main", "3.12", {"name": "x"})
    assert answer.result["message"] == "howdy x"


def test_unrelated_package_keeps_its_build_when_another_changes(workspace: Path, cache_dir: Path):
    """Editing api does not touch app's build: same folder, taken from the cache."""
    app_before = build_of(workspace, "app")
    handler = workspace / "packages" / "api" / "src" / "api" / "handler.py"
    handler.write_text(handler.read_text() + "\n# edited\n")
    app_after = build_of(workspace, "app")
    assert app_after.cached and app_after.entry == app_before.entry


def test_build_folders_are_private(workspace: Path, cache_dir: Path):
    """The cache's build folder is readable by its owner only, and builds have unpredictable names."""
    build_of(workspace, "app")
    assert (cache_dir / "builds").stat().st_mode & 0o077 == 0


def test_users_files_are_untouched_by_a_build(workspace: Path, cache_dir: Path):
    """uv.lock, every pyproject.toml and the sources are byte-identical after builds; no .venv appears."""
    before = tree_digest(workspace)
    build_of(workspace, "api")
    build_of(workspace, "app")
    assert tree_digest(workspace) == before
    assert not (workspace / ".venv").exists()


def test_exclude_patterns_leave_files_out(workspace: Path, cache_dir: Path):
    """`exclude` globs on asset-relative paths drop matching files."""
    asset = build_of(workspace, "api", exclude=["*.pyi", "orjson-*.dist-info/licenses/*"]).asset_dir
    files = files_of(asset)
    assert not any(f.endswith(".pyi") for f in files)
    assert not any("/licenses/" in f for f in files)
    assert any(f.startswith("orjson/") and f.endswith(".so") for f in files)


def test_a_umask_077_build_is_identical_to_a_umask_022_one(shared_build, workspace: Path, tmp_path: Path):
    """Modes don't follow the builder's umask, bytecode included: the CLI's zip records them."""
    first = shared_build("api").asset_dir  # built with this process's umask
    old = os.umask(0o077)
    try:
        second = build_of(workspace, "api", cache_dir=tmp_path / "c2").asset_dir
    finally:
        os.umask(old)
    assert any(second.rglob("*.pyc"))
    assert_api_asset(first)
    assert tree_digest(first) == tree_digest(second)
