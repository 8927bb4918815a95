"""Bytecode needs each runtime's exact Python: where it is found, and what to do when it is nowhere."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, assert_complete_error

from cdk_uv_aspect._build import build
from cdk_uv_aspect._errors import ToolError
from cdk_uv_aspect._interpreters import find_python, python_installs
from cdk_uv_aspect._options import UvOptions
from cdk_uv_aspect._request import BuildRequest
from cdk_uv_aspect._target import Target
from cdk_uv_aspect._uv import Uv
from cdk_uv_aspect._workspace import Workspace

pytestmark = [pytest.mark.slow, pytest.mark.oldest_uv]

UV = Uv.locate(None).path
RUNNING = f"{sys.version_info.major}.{sys.version_info.minor}"


def real_python(version: str) -> Path:
    """A real interpreter of ``version`` on this machine, wherever it is (the tests need 3.11-3.13)."""
    found = next((p for p in python_installs(version) if p.is_file()), None) or shutil.which(f"python{version}")
    assert found, f"the tests need a Python {version} interpreter"
    return Path(found)


def version_of(python: str) -> str:
    done = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True)
    return done.stdout.decode().strip()


def test_the_python_running_the_synth_is_used_when_it_is_the_runtime_s(monkeypatch: pytest.MonkeyPatch):
    """No search at all for the version this process runs: uv is not even asked."""
    monkeypatch.setenv("PATH", "/nonexistent")
    assert find_python("/nonexistent/uv", RUNNING) == sys.executable


def test_an_installed_but_unselected_pyenv_python_is_found(monkeypatch: pytest.MonkeyPatch):
    """pyenv's shim of an unselected version makes `uv python find` fail; its install is found all the same."""
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    if not list((pyenv_root / "versions").glob("3.12.*")):
        pytest.skip("no pyenv Python 3.12 on this machine")  # the next test covers the same search without pyenv
    monkeypatch.delenv("PYENV_VERSION", raising=False)
    monkeypatch.setenv("UV_PYTHON_DOWNLOADS", "never")
    assert subprocess.run([UV, "python", "find", "--no-project", "3.12"], capture_output=True).returncode != 0
    found = find_python(UV, "3.12")
    assert found is not None and found.startswith(str(pyenv_root / "versions")) and version_of(found) == "3.12"


def test_uv_finds_a_pyenv_python_offline_once_it_is_selected():
    """What the README says about pyenv: its shims answer uv only for the versions selected, so with
    downloads off `uv python find 3.12` (as `uv init`, `uv add` and `uv run` look) fails until
    PYENV_VERSION lists a 3.12, and then finds pyenv's own install."""
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    versions = sorted(p.name for p in (pyenv_root / "versions").glob("3.1[12].*"))
    selected = {v[:4]: v for v in versions}
    if set(selected) != {"3.11", "3.12"} or shutil.which("python3.12", path="/usr/local/bin:/usr/bin:/bin"):
        pytest.skip("needs pyenv's Python 3.11 and 3.12, and no python3.12 of the OS")
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "PATH": f"{pyenv_root / 'shims'}:/usr/local/bin:/usr/bin:/bin"}
    find = [UV, "python", "find", "--no-project", "3.12"]
    only_311 = subprocess.run(find, env={**env, "PYENV_VERSION": selected["3.11"]}, capture_output=True, text=True)
    assert only_311.returncode != 0, only_311.stdout
    both = f"{selected['3.12']}:{selected['3.11']}"
    found = subprocess.run(find, env={**env, "PYENV_VERSION": both}, capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip().startswith(str(pyenv_root / "versions" / selected["3.12"]))
    readme = (REPO / "README.md").read_text()
    assert "export PYENV_VERSION=3.12.1:3.11.7" in readme and "UV_PYTHON_DOWNLOADS=never" in readme


@pytest.mark.parametrize(
    ("variable", "layout"),
    [
        ("ASDF_DATA_DIR", "installs/python/3.12.{patch}/bin/python3.12"),
        ("MISE_DATA_DIR", "installs/python/3.12.{patch}/bin/python3.12"),
        ("PYENV_ROOT", "versions/3.12.{patch}/bin/python3.12"),
    ],
)
def test_asdf_mise_and_pyenv_installs_are_found_newest_first(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str, layout: str
):
    """A version manager's folder of Pythons (a real 3.12 linked into it): its newest 3.12 is used."""
    real = real_python("3.12")
    for patch in (1, 9):
        link = tmp_path / layout.format(patch=patch)
        link.parent.mkdir(parents=True)
        link.symlink_to(real.resolve())
    (tmp_path / layout.format(patch="10rc1")).parent.mkdir(parents=True)  # not a release: skipped
    for name in ("ASDF_DATA_DIR", "MISE_DATA_DIR", "PYENV_ROOT"):
        monkeypatch.setenv(name, str(tmp_path / "none"))
    monkeypatch.setenv(variable, str(tmp_path))
    monkeypatch.setenv("PATH", "/nonexistent")  # neither uv nor a python3.12 on PATH
    assert find_python("/nonexistent/uv", "3.12") == str(tmp_path / layout.format(patch=9))


def test_no_interpreter_names_every_way_on(workspace: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """No Python 3.14 and uv may not download one: install it (uv, pyenv), UV_PYTHON_INSTALL_DIR, or no
    bytecode with its cost; what was tried is shown. With bytecode=False the same build succeeds."""
    monkeypatch.setenv("UV_PYTHON_DOWNLOADS", "never")
    request = BuildRequest(Workspace.find(workspace), "app", Target("3.14", "x86_64"), UvOptions())
    with pytest.raises(ToolError) as error:
        build(request)
    assert_complete_error(
        str(error.value),
        construct=None,  # a build outside any synth: `cdk-uv build`
        package="app",
        target="python3.14 x86_64 (Amazon Linux 2023, glibc 2.34)",
        fix="`uv python install 3.14`",
        also=[
            "no Python 3.14 interpreter on this machine to compile bytecode for python3.14",
            "`pyenv install 3.14`",
            "UV_PYTHON_INSTALL_DIR",
            "UvOptions(bytecode=False), at a cost",
            "40%",
            f"this process's Python ({RUNNING})",
            "uv download: ",
        ],
    )
    assert "uv lock" not in str(error.value)
    built = build(BuildRequest(request.workspace, "app", request.target, UvOptions(bytecode=False)))
    assert (built.asset_dir / "main.py").is_file()


def test_uv_downloads_the_interpreter_where_its_settings_allow(
    workspace: Path, cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """python-downloads left at uv's default: uv is asked to download Python 3.14 (from a mirror that has
    none here), and its answer is in the error; "never" in the workspace's [tool.uv] keeps uv from trying."""
    monkeypatch.delenv("UV_PYTHON_DOWNLOADS", raising=False)
    monkeypatch.setenv("UV_PYTHON_INSTALL_MIRROR", (tmp_path / "mirror").as_uri())
    request = BuildRequest(Workspace.find(workspace), "app", Target("3.14", "x86_64"), UvOptions())
    with pytest.raises(ToolError) as error:
        build(request)
    assert f"uv download: error: failed to query metadata of file `{tmp_path / 'mirror'}" in str(error.value)

    from cdk_uv_aspect import _state

    _state.reset()
    pyproject = workspace / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + '\n[tool.uv]\npython-downloads = "never"\n')
    with pytest.raises(ToolError) as error:
        build(request)
    assert "mirror" not in str(error.value)


def test_a_uv_command_without_its_interpreter_is_not_a_lock_problem(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    """A package with dynamic metadata needs a Python to export: when uv finds none, the error says so,
    not "run `uv lock`"."""
    root = tmp_path / "dyn"
    (root / "src" / "dyn").mkdir(parents=True)
    (root / "src" / "dyn" / "__init__.py").write_text('__version__ = "1.0"\n\ndef main(e, c):\n    return 1\n')
    (root / "pyproject.toml").write_text(
        '[project]\nname = "dyn"\ndynamic = ["version"]\nrequires-python = ">=3.13"\n'
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        '[tool.setuptools.dynamic]\nversion = {attr = "dyn.__version__"}\n'
    )
    env = {**os.environ, "UV_CACHE_DIR": str(tmp_path / "uv-cache")}
    subprocess.run([UV, "lock", "--quiet"], cwd=root, env=env, check=True)
    # Only Python 3.11 for uv now (the pyenv shims of the others fail), and no downloads.
    monkeypatch.setenv("PYENV_VERSION", "3.11.7" if os.environ.get("PYENV_VERSION") else "")
    monkeypatch.setenv("UV_PYTHON_DOWNLOADS", "never")
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache-2"))
    request = BuildRequest(Workspace.find(root), "dyn", Target("3.13", "x86_64"), UvOptions(bytecode=False))
    with pytest.raises(ToolError) as error:
        build(request)
    message = str(error.value)
    assert_complete_error(
        message,
        construct=None,
        package="dyn",
        target="python3.13 x86_64 (Amazon Linux 2023, glibc 2.34)",
        fix="uv python install '",
        also=["uv found no Python", "interpreter it could use", "uv.lock is not the cause"],
    )
    assert "run `uv lock`" not in message
