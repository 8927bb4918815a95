"""Odd but valid layouts build: caches and virtualenvs inside the project, absolute and file path sources,
path sources only the CDK app needs, and workspace-level uv settings the lock already applied."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import pytest
from conftest import assert_api_asset, call_handler

from cdk_uv_aspect._build import BuildRequest, Built, build
from cdk_uv_aspect._errors import UvError
from cdk_uv_aspect._options import UvOptions
from cdk_uv_aspect._target import Target
from cdk_uv_aspect._uv import Uv, pip_config
from cdk_uv_aspect._workspace import Workspace


def build_of(workspace: Path, package: str = "api", **options) -> Built:
    request = BuildRequest(Workspace.find(workspace), package, Target("3.12", "x86_64"), UvOptions(**options))
    return build(request)


def uv(*args: str, cwd: Path, env: dict[str, str] | None = None) -> None:
    subprocess.run([Uv.locate(None).path, *args], cwd=cwd, check=True, capture_output=True, env=env)


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + "\n" + text)


# --- the workspace's uv settings, for the locked install ------------------------------------------------


def test_pip_config_keeps_indexes_and_drops_what_the_lock_applied(tmp_path: Path):
    """Indexes, find-links and [tool.uv.pip] stay (relative paths made absolute); constraints go."""
    root = tmp_path / "ws"
    root.mkdir()
    (root / "pyproject.toml").write_text(
        "[tool.uv]\n"
        'constraint-dependencies = ["urllib3<2"]\n'
        'override-dependencies = ["idna>=3"]\n'
        'find-links = ["./wheelhouse"]\n'
        'index-strategy = "unsafe-best-match"\n'
        "[tool.uv.workspace]\n"
        'members = ["packages/*"]\n'
        "[[tool.uv.index]]\n"
        'name = "private"\n'
        'url = "https://pypi.example.com/simple"\n'
        "explicit = true\n"
        "[[tool.uv.index]]\n"
        'name = "flat"\n'
        'url = "./flat"\n'
        'format = "flat"\n'
        "[tool.uv.pip]\n"
        'extra-index-url = ["https://mirror.example.com/simple"]\n'
    )
    written = tomllib.loads((pip_config(root, tmp_path / "config") / "pyproject.toml").read_text())["tool"]["uv"]
    assert "constraint-dependencies" not in written and "override-dependencies" not in written
    assert "workspace" not in written
    assert written["index-strategy"] == "unsafe-best-match"
    assert written["find-links"] == [str(root / "wheelhouse")]
    assert written["index"] == [
        {"name": "private", "url": "https://pypi.example.com/simple", "explicit": True},
        {"name": "flat", "url": str(root / "flat"), "format": "flat"},
    ]
    assert written["pip"] == {"extra-index-url": ["https://mirror.example.com/simple"]}


def test_pip_config_reads_a_uv_toml_above_the_workspace(tmp_path: Path):
    """As uv does: the nearest uv.toml (or pyproject.toml with [tool.uv]) from the workspace upward."""
    (tmp_path / "uv.toml").write_text('index-url = "https://mirror.example.com/simple"\n')
    root = tmp_path / "repo" / "infra"
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text("[tool.uv.workspace]\nmembers = []\n")  # its [tool.uv] wins
    assert "index-url" not in (pip_config(root, tmp_path / "c1") / "pyproject.toml").read_text()
    (root / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "0"\n')
    written = tomllib.loads((pip_config(root, tmp_path / "c2") / "pyproject.toml").read_text())
    assert written["tool"]["uv"]["index-url"] == "https://mirror.example.com/simple"


@pytest.mark.slow
def test_constraint_dependencies_at_the_root_do_not_break_the_locked_install(workspace: Path, cache_dir: Path):
    """`[tool.uv] constraint-dependencies` (and overrides): uv pip refused every registry dependency."""
    append(
        workspace / "pyproject.toml",
        '[tool.uv]\nconstraint-dependencies = ["orjson<99"]\noverride-dependencies = ["iniconfig>=1"]\n',
    )
    uv("lock", "--quiet", cwd=workspace)
    asset = build_of(workspace).asset_dir
    assert_api_asset(asset)
    assert call_handler(asset, "api.handler.main", "3.12").ok


@pytest.mark.slow
def test_the_workspace_pip_settings_still_steer_the_locked_install(
    workspace: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    """With the constraints left out, the rest of the workspace's uv settings is still read: an index
    that can't be reached ([tool.uv.pip], which the lock does not record) is the one uv asks."""
    append(
        workspace / "pyproject.toml",
        '[tool.uv]\nconstraint-dependencies = ["orjson<99"]\n[tool.uv.pip]\nindex-url = "http://127.0.0.1:9/simple"\n',
    )
    uv("lock", "--quiet", cwd=workspace)
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")
    with pytest.raises(UvError) as error:
        build_of(workspace)
    assert "127.0.0.1:9" in str(error.value)
