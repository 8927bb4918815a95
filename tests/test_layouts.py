"""Odd but valid layouts build: caches and virtualenvs inside the project, absolute and file path sources,
path sources only the CDK app needs, and workspace-level uv settings the lock already applied."""

from __future__ import annotations

import os
import subprocess
import tomllib
from pathlib import Path

import pytest
from helpers import assert_api_asset, build_of, call_handler

from cdk_uv_aspect._errors import UvError
from cdk_uv_aspect._pipconfig import pip_config
from cdk_uv_aspect._uv import Uv


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


# --- caches and virtualenvs inside the project ------------------------------------------------------


def single_project(tmp_path: Path, *, library: bool = True) -> Path:
    """A single-project layout: the project root is the function's package (and holds the CDK app)."""
    root = tmp_path / "solo"
    build_system = '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
    pyproject = '[project]\nname = "solo"\nversion = "0.1.0"\nrequires-python = ">=3.11"\ndependencies = []\n'
    handler = "def main(event, context):\n    return {'solo': True}\n"
    files = {"pyproject.toml": pyproject + (build_system if library else ""), "app.py": "# the CDK app\n"}
    files.update({"src/solo/__init__.py": "", "src/solo/handler.py": handler} if library else {"handler.py": handler})
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    uv("lock", "--quiet", cwd=root)
    return root


def shipped(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
@pytest.mark.parametrize("library", [True, False], ids=["library", "application"])
def test_a_build_cache_inside_a_single_project(tmp_path: Path, library: bool, monkeypatch: pytest.MonkeyPatch):
    """CDK_UV_CACHE_DIR=$PWD/.cdk-uv-cache (GitLab CI caches must be inside the project): the cache is
    never copied into itself nor into the asset, and the next synth is served from it."""
    root = single_project(tmp_path, library=library)
    monkeypatch.setenv("CDK_UV_CACHE_DIR", str(root / ".cdk-uv-cache"))
    first = build_of(root, "solo")
    handler = "solo.handler.main" if library else "handler.main"
    assert call_handler(first.asset_dir, handler, "3.12").result == {"solo": True}
    assert not any(".cdk-uv-cache" in f for f in shipped(first.asset_dir))
    again = build_of(root, "solo")
    assert again.cached and again.entry == first.entry


@pytest.mark.slow
def test_uv_cache_and_virtualenvs_inside_the_project_are_not_sources(tmp_path: Path, cache_dir: Path):
    """uv's own cache (UV_CACHE_DIR=$PWD/.uv-cache) and a virtualenv under any name (`uv venv tools-env`)
    change no build key: the next synth is served from the build cache, and neither ships."""
    root = single_project(tmp_path, library=False)
    env = {**os.environ, "UV_CACHE_DIR": str(root / ".uv-cache")}
    first = build_of(root, "solo")
    uv("venv", "--quiet", "tools-env", cwd=root, env=env)  # its bin/python links out of the project
    (root / "tools-env" / "lib" / "tool.py").write_text("# a module a copy of the project's modules would take\n")
    uv("cache", "prune", "--quiet", cwd=root, env=env)
    assert (root / ".uv-cache" / "CACHEDIR.TAG").is_file() and (root / "tools-env" / "pyvenv.cfg").is_file()
    again = build_of(root, "solo")
    assert again.cached and again.entry == first.entry
    assert not any(f.startswith(("tools-env", ".uv-cache")) for f in shipped(again.asset_dir))


# --- what a single project's build key covers ----------------------------------------------------------

BACKENDS = {
    "hatchling": '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n',
    "uv_build": '[build-system]\nrequires = ["uv_build>=0.8,<0.14"]\nbuild-backend = "uv_build"\n',
    "application": "",
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(BACKENDS))
def test_a_single_projects_build_key_covers_only_what_reaches_its_asset(
    tmp_path: Path, cache_dir: Path, kind: str, monkeypatch: pytest.MonkeyPatch
):
    """A project at the repository root with its README, tests, CDK app and cdk.json beside the package:
    editing those is served from the build cache; editing the package's code (or its pyproject.toml)
    builds it again, and the edit is deployed."""
    root = tmp_path / "solo"
    module = "src/solo/handler.py" if BACKENDS[kind] else "handler.py"
    files = {
        "pyproject.toml": '[project]\nname = "solo"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
        "dependencies = []\n" + BACKENDS[kind],
        module: "def main(event, context):\n    return {'solo': 1}\n",
        "README.md": "# solo\n",
        "tests/test_handler.py": "def test_main():\n    pass\n",
        "cdk.json": '{"app": "uv run --no-sync python app.py"}\n',
        "docs/guide.md": "how to\n",
    }
    if BACKENDS[kind]:
        files.update({"src/solo/__init__.py": "", "app.py": "# the CDK app: not in the wheel\n"})
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    uv("lock", "--quiet", cwd=root)
    handler = "solo.handler.main" if BACKENDS[kind] else "handler.main"

    first = build_of(root, "solo")
    assert call_handler(first.asset_dir, handler, "3.12").result == {"solo": 1}
    for rel in [
        "README.md",
        "tests/test_handler.py",
        "cdk.json",
        "docs/guide.md",
        *(["app.py"] * bool(BACKENDS[kind])),
    ]:
        append(root / rel, "# edited\n")
        again = build_of(root, "solo")
        assert again.cached and again.entry == first.entry, f"editing {rel} rebuilt the package"

    (root / module).write_text("def main(event, context):\n    return {'solo': 2}\n")
    edited = build_of(root, "solo")
    assert not edited.cached and edited.entry != first.entry
    assert call_handler(edited.asset_dir, handler, "3.12").result == {"solo": 2}
    if BACKENDS[kind]:  # a packaged project's build configuration is in its key (an application's is the lock)
        append(root / "pyproject.toml", "# a comment\n")
        assert not build_of(root, "solo").cached


# --- path sources ---------------------------------------------------------------------------------


def add_dependency(workspace: Path, package: str, name: str, source: str) -> None:
    pyproject = workspace / "packages" / package / "pyproject.toml"
    text = pyproject.read_text()
    text = text.replace("dependencies = [", f'dependencies = ["{name}", ', 1)
    if "[tool.uv.sources]" in text:
        text = text.replace("[tool.uv.sources]", f"[tool.uv.sources]\n{name} = {source}", 1)
    else:
        text += f"\n[tool.uv.sources]\n{name} = {source}\n"
    pyproject.write_text(text)


def library(folder: Path, name: str, body: str = "VALUE = 1\n") -> Path:
    (folder / "src" / name).mkdir(parents=True)
    (folder / "src" / name / "__init__.py").write_text(body)
    (folder / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "0.1.0"\n'
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
    )
    return folder


@pytest.mark.slow
def test_a_path_dependency_given_by_absolute_path_is_built(workspace: Path, cache_dir: Path, tmp_path: Path):
    """`extlib = { path = "/abs/extlib" }` is a package like any other, not "a link outside the workspace"."""
    extlib = library(tmp_path / "elsewhere" / "extlib", "extlib")
    add_dependency(workspace, "api", "extlib", f'{{ path = "{extlib}" }}')
    uv("lock", "--quiet", cwd=workspace)
    assert f'directory = "{extlib}"' in (workspace / "uv.lock").read_text()  # uv keeps it absolute
    asset = build_of(workspace).asset_dir
    assert (asset / "extlib" / "__init__.py").is_file()
    assert_api_asset(asset)


@pytest.mark.slow
def test_path_sources_only_the_cdk_app_needs_do_not_touch_a_function_build(
    workspace: Path, cache_dir: Path, tmp_path: Path
):
    """The CDK app's own package depends on a local checkout by absolute path, and another member is a
    link out of the workspace: no function's closure holds them, so every function builds; a build
    that needs the link is refused, naming it."""
    toolkit = library(tmp_path / "checkouts" / "toolkit", "toolkit")
    infra = workspace / "packages" / "infra"
    infra.mkdir()
    (infra / "pyproject.toml").write_text(
        '[project]\nname = "infra"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
        f'dependencies = ["toolkit"]\n[tool.uv.sources]\ntoolkit = {{ path = "{toolkit}" }}\n'
    )
    library(tmp_path / "outside" / "linked", "linked")
    (workspace / "packages" / "linked").symlink_to(tmp_path / "outside" / "linked", target_is_directory=True)
    uv("lock", "--quiet", cwd=workspace)
    assert_api_asset(build_of(workspace).asset_dir)
    with pytest.raises(UvError, match=r"(?s)packages/linked .* is a link to .*outside the workspace.*fix:"):
        build_of(workspace, "linked")


@pytest.mark.slow
def test_a_locked_wheel_file_is_installed_and_its_hash_checked(workspace: Path, cache_dir: Path, tmp_path: Path):
    """`tiny = { path = "wheelhouse/tiny-0.1.0-py3-none-any.whl" }`: installed from the file, not called
    "not a package of uv.lock"; a file changed after locking is refused by its hash."""
    source = library(tmp_path / "tiny-src" / "tiny", "tiny", "def answer():\n    return 42\n")
    uv("build", "--wheel", "--quiet", "--out-dir", str(workspace / "wheelhouse"), str(source), cwd=tmp_path)
    wheel = next((workspace / "wheelhouse").glob("tiny-*.whl"))
    add_dependency(workspace, "api", "tiny", f'{{ path = "../../wheelhouse/{wheel.name}" }}')
    uv("lock", "--quiet", cwd=workspace)
    asset = build_of(workspace).asset_dir
    assert (asset / "tiny" / "__init__.py").is_file()
    assert_api_asset(asset)
    # Another wheel under the same name: what a hand-edited or swapped file looks like.
    library(tmp_path / "other-src" / "tiny", "tiny", "def answer():\n    return 43\n")
    uv("build", "--wheel", "--quiet", "--out-dir", str(workspace / "wheelhouse"), "tiny", cwd=tmp_path / "other-src")
    with pytest.raises(UvError, match=r"(?is)hash"):
        build_of(workspace, rebuild=True)
