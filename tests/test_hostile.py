"""Hostile or broken input is refused with a clear error; nothing runs, nothing is written outside our folders."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from helpers import build_of, call_handler, tree_digest

from cdk_uv_aspect._errors import ToolError, UvError, WorkspaceError

pytestmark = pytest.mark.slow


def test_workspace_member_linking_out_of_the_workspace_is_refused(workspace: Path, cache_dir: Path, tmp_path: Path):
    """packages/common replaced by a link to a folder elsewhere on the machine."""
    elsewhere = tmp_path / "elsewhere" / "common"
    elsewhere.parent.mkdir()
    (workspace / "packages" / "common").rename(elsewhere)
    (workspace / "packages" / "common").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(WorkspaceError, match=r"(?s)packages/common .* is a link to .*outside the workspace.*fix:"):
        build_of(workspace)
    assert not (cache_dir / "builds").exists()


def test_file_linking_outside_its_package_is_not_copied(workspace: Path, cache_dir: Path, tmp_path: Path):
    """A link to a secret outside the package: refused before anything is built, naming the file."""
    secret = tmp_path / "id_rsa"
    secret.write_text("PRIVATE KEY")
    link = workspace / "packages" / "api" / "src" / "api" / "key.pem"
    link.symlink_to(secret)
    with pytest.raises(WorkspaceError, match=r"(?s)key\.pem is a link to .*id_rsa, outside its package"):
        build_of(workspace)
    assert not (cache_dir / "builds").exists()


def test_link_inside_the_package_is_fine(workspace: Path, cache_dir: Path):
    """A link to another file of the same package is an ordinary part of it: shipped, and it answers."""
    handler_dir = workspace / "packages" / "api" / "src" / "api"
    (handler_dir / "alias.py").symlink_to(handler_dir / "handler.py")
    asset = build_of(workspace).asset_dir
    assert (asset / "api" / "alias.py").read_text() == (handler_dir / "handler.py").read_text()
    assert call_handler(asset, "api.alias.main", "3.12", {"name": "x"}).result["message"] == "hello x"


def test_unreadable_file_in_a_package_is_named(workspace: Path, cache_dir: Path):
    """A file that can't be read (here a dangling link, which root can't read either)."""
    (workspace / "packages" / "common" / "src" / "common" / "gone.py").symlink_to("missing.py")
    with pytest.raises(WorkspaceError, match=r"(?s)gone\.py can't be read.*fix:"):
        build_of(workspace)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.replace("[[package]]", "[[package]", 1), r"uv\.lock can't be read"),
        (lambda s: re.sub(r"^version = 1$", "version = 99", s, count=1, flags=re.M), r"unsupported schema version"),
        (lambda s: re.sub(r'(name = "orjson"\nversion = ")[^"]+', r"\g<1>9.9.9", s, count=1), r"inconsistent version"),
    ],
    ids=["not-toml", "schema-version", "hand-edited-version"],
)
def test_hand_edited_invalid_lock_is_refused_and_left_alone(workspace: Path, cache_dir: Path, edit, message):
    lock = workspace / "uv.lock"
    lock.write_text(edit(lock.read_text()))
    before = tree_digest(workspace)
    with pytest.raises(UvError, match=r"(?s)" + message) as error:
        build_of(workspace)
    assert "uv lock" in str(error.value)
    assert tree_digest(workspace) == before
    leftovers = list((cache_dir / "builds").iterdir()) if (cache_dir / "builds").exists() else []
    assert leftovers == []


def test_cache_that_others_can_write_to_is_refused(workspace: Path, tmp_path: Path):
    """A build cache writable by others (say under a shared /tmp) could be swapped under us."""
    shared = tmp_path / "shared"
    (shared / "builds").mkdir(parents=True)
    os.chmod(shared / "builds", 0o777)
    with pytest.raises(ToolError, match=r"(?s)is not private.*fix:"):
        build_of(workspace, cache_dir=shared)


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a folder's owner needs root")
def test_cache_owned_by_another_user_is_refused(workspace: Path, tmp_path: Path):
    shared = tmp_path / "shared"
    (shared / "builds").mkdir(parents=True, mode=0o700)
    os.chown(shared / "builds", 12345, 12345)
    with pytest.raises(ToolError, match="belongs to another user"):
        build_of(workspace, cache_dir=shared)


def test_a_package_with_a_230_character_name_builds(workspace: Path, cache_dir: Path, tmp_path: Path):
    """PEP 508 sets no length to a name: a 230-character one builds, is cached and answers (the cache entry's
    own name was over the file system's 255 bytes: "File name too long", with a fix that could not help)."""
    import subprocess

    from helpers import add_function, call_handler, function_codes, staged_asset, synth_app

    from cdk_uv_aspect._uv import Uv

    name = "api-" + "a" * 226
    package = workspace / "packages" / "api"
    pyproject = package / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('name = "api"', f'name = "{name}"')
        + '\n[tool.hatch.build.targets.wheel]\npackages = ["src/api"]\n'
    )
    (package / "src" / "api" / "short.py").write_text(
        "from common import greet\n\ndef main(event, context):\n    return {'message': greet(event['name'])}\n"
    )
    subprocess.run([Uv.locate(None).path, "lock", "--quiet"], cwd=workspace, check=True)

    for out in ("one", "two"):
        _, stack = synth_app(
            workspace, lambda s: add_function(s, "Api", name, handler="api.short.main"), outdir=tmp_path / out
        )
        (code,) = function_codes(stack).values()
        staged = staged_asset(tmp_path / out, code)
        assert call_handler(staged, "api.short.main", "3.12", {"name": "x"}).result["message"] == "hello x"
    names = [p.name for folder in ("builds", "wheels") for p in (cache_dir / folder).iterdir()]
    assert names and all(len(n.encode()) <= 128 for n in names), names


def test_a_tmpdir_too_deep_for_a_unix_socket_still_builds_with_bytecode(
    workspace: Path, cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A TMPDIR deep in a work folder (a CI runner's own): compileall's workers need a Unix socket there,
    whose path can't pass 107 bytes ("AF_UNIX path too long"); the build compiles all the same, with the
    same bytes as under a short TMPDIR."""
    deep = tmp_path / ("a-runner-work-folder-" * 5) / "tmp"
    deep.mkdir(parents=True)
    monkeypatch.setenv("TMPDIR", str(deep))
    built = build_of(workspace, cache_dir=cache_dir)
    assert next(built.asset_dir.rglob("orjson/__pycache__/*.cpython-312.pyc"), None) is not None
    monkeypatch.delenv("TMPDIR")
    again = build_of(workspace, cache_dir=tmp_path / "short", rebuild=True)
    assert tree_digest(again.asset_dir) == tree_digest(built.asset_dir)
