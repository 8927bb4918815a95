"""Bad input: each stops synthesis with an error naming construct, package, target and fix; nothing lost."""

from __future__ import annotations

import re
import stat
from collections.abc import Sequence
from pathlib import Path

import pytest
from aws_cdk import App, Aspects, Stack
from aws_cdk import aws_lambda as lambda_
from conftest import add_function, synth_app, tree_digest

from cdk_uv_aspect import UvBundlingAspect, UvCode
from cdk_uv_aspect._build import BuildRequest, build
from cdk_uv_aspect._errors import ToolError
from cdk_uv_aspect._options import UvOptions
from cdk_uv_aspect._runner import Result, Runner
from cdk_uv_aspect._target import Target
from cdk_uv_aspect._workspace import Workspace

pytestmark = pytest.mark.slow


def synth_error(workspace: Path | None, populate, **options) -> str:
    with pytest.raises(RuntimeError) as error:
        if workspace is None:
            app = App()
            populate(Stack(app, "Stack"))
            Aspects.of(app).add(UvBundlingAspect(**options))
            app.synth()
        else:
            synth_app(workspace, populate, **options)
    return str(error.value)


def assert_names(message: str, *parts: str) -> None:
    for part in parts:
        assert part in message, f"{part!r} not in:\n{message}"


def no_half_written_builds(cache_dir: Path) -> None:
    builds = cache_dir / "builds"
    leftovers = [p.name for p in builds.iterdir()] if builds.exists() else []
    assert leftovers == [], f"left behind: {leftovers}"


def test_package_not_in_the_workspace(workspace: Path, cache_dir: Path):
    message = synth_error(workspace, lambda s: add_function(s, "Api", "apii"))
    assert_names(message, "Stack/Api", "'apii' is not in the workspace", "api, app, common", "fix:")


def test_no_workspace_above_the_current_directory(tmp_path: Path, cache_dir: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    message = synth_error(None, lambda s: add_function(s, "Api", "api"))
    assert_names(message, "Stack/Api", "no uv.lock in", "UvOptions(workspace=")


def test_missing_lock(workspace: Path, cache_dir: Path):
    (workspace / "uv.lock").unlink()
    message = synth_error(workspace, lambda s: add_function(s, "Api", "api"))
    assert_names(message, "Stack/Api", "no uv.lock", "run `uv lock`")


def test_stale_lock_is_refused_and_left_as_it_is(workspace: Path, cache_dir: Path):
    """A dependency added without `uv lock`: the error says to run it; uv.lock is not rewritten."""
    pyproject = workspace / "packages" / "api" / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"orjson>=3.10"', '"orjson>=3.10", "six"'))
    lock_before = (workspace / "uv.lock").read_bytes()
    message = synth_error(workspace, lambda s: add_function(s, "Api", "api"))
    assert_names(message, "Stack/Api", "package:   api", "python3.12 x86_64", "out of date", "run `uv lock`")
    assert (workspace / "uv.lock").read_bytes() == lock_before
    no_half_written_builds(cache_dir)


def test_marker_on_a_non_python_runtime(workspace: Path, cache_dir: Path):
    def populate(stack: Stack) -> None:
        fn = lambda_.Function(
            stack, "Node", runtime=lambda_.Runtime.NODEJS_20_X, handler="index.handler", code=UvCode()
        )
        fn.node.add_metadata("uv", "api")

    message = synth_error(workspace, populate)
    assert_names(message, "Stack/Node", "nodejs20.x, not a Python runtime", "fix:")


def test_marker_with_wrong_data_type(workspace: Path, cache_dir: Path):
    def populate(stack: Stack) -> None:
        add_function(stack, "Api", None).node.add_metadata("uv", ["api"])

    message = synth_error(workspace, populate)
    assert_names(message, "Stack/Api", "must be a package name", "['api']")


def test_dependency_without_a_wheel_for_amazon_linux_2(workspace: Path, cache_dir: Path):
    """numpy 2.4 ships only manylinux_2_28 x86_64 wheels: it would install, then fail at import on AL2."""
    before = tree_digest(workspace)
    message = synth_error(
        workspace,
        lambda s: add_function(s, "Num", "numeric", handler="numeric.main", runtime=lambda_.Runtime.PYTHON_3_11),
        docker_fallback=False,
    )  # the wheel error itself, whether or not this machine has Docker
    assert_names(
        message,
        "Stack/Num",
        "package:   numeric",
        "numpy==2.4.6",
        "Amazon Linux 2",
        "glibc 2.26",
        "python3.12+",
        "pin a release",
    )
    assert tree_digest(workspace) == before
    no_half_written_builds(cache_dir)


def test_package_whose_requires_python_excludes_the_runtime(workspace: Path, cache_dir: Path):
    message = synth_error(workspace, lambda s: add_function(s, "Old", "api", runtime=lambda_.Runtime.PYTHON_3_10))
    assert_names(message, "Stack/Old", "requires Python >=3.11", "python3.10")


def test_missing_interpreter_for_bytecode_says_how_to_go_on(workspace: Path, cache_dir: Path):
    """No python3.14 on this machine: a clear error; with bytecode=False the same build succeeds."""
    request = BuildRequest(Workspace.find(workspace), "app", Target("3.14", "x86_64"), UvOptions())
    with pytest.raises(ToolError) as error:
        build(request)
    assert_names(str(error.value), "no Python 3.14 interpreter", "uv python install 3.14", "UvOptions(bytecode=False)")
    no_half_written_builds(cache_dir)
    built = build(BuildRequest(request.workspace, "app", request.target, UvOptions(bytecode=False)))
    assert (built.asset_dir / "main.py").is_file()


def _fake_uv(tmp_path: Path, version_line: str) -> str:
    script = tmp_path / "uv"
    script.write_text(f"#!/bin/sh\necho '{version_line}'\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def test_uv_older_than_supported(workspace: Path, cache_dir: Path, tmp_path: Path):
    old = _fake_uv(tmp_path, "uv 0.5.0")
    message = synth_error(workspace, lambda s: add_function(s, "Api", "api"), uv=old)
    assert_names(message, "Stack/Api", "uv 0.5.0", "older than 0.8.0", "upgrade uv")


def test_uv_missing(workspace: Path, cache_dir: Path, tmp_path: Path):
    message = synth_error(workspace, lambda s: add_function(s, "Api", "api"), uv=str(tmp_path / "nope" / "uv"))
    assert_names(message, "Stack/Api", "uv was not found", "UvOptions(uv=")


class FailingInstall(Runner):
    """The real runner, except that `uv pip install` fails the way a broken index would."""

    def run(self, args: Sequence[str], **kwargs) -> Result:
        if list(args[1:3]) == ["pip", "install"]:
            return Result(
                tuple(args),
                2,
                "",
                "error: Failed to fetch: `https://pypi.example/simple/orjson/`\n"
                "  Caused by: HTTP status server error (503)",
            )
        return super().run(args, **kwargs)


def test_uv_failure_shows_its_command_and_stderr(workspace: Path, cache_dir: Path):
    request = BuildRequest(Workspace.find(workspace), "api", Target("3.12", "arm64"), UvOptions())
    with pytest.raises(ToolError) as error:
        build(request, runner=FailingInstall())
    message = str(error.value)
    assert_names(
        message,
        "package:   api",
        "python3.12 arm64",
        "uv could not install",
        "exit code: 2",
        "HTTP status server error (503)",
    )
    assert re.search(r"command:\s+\S+ pip install --target", message)
    no_half_written_builds(cache_dir)


def test_several_failing_builds_are_all_reported(workspace: Path, cache_dir: Path):
    """Errors from builds run in parallel are reported together, each with its function."""

    def populate(stack: Stack) -> None:
        add_function(stack, "Num", "numeric", handler="numeric.main", runtime=lambda_.Runtime.PYTHON_3_11)
        add_function(stack, "Num2", "numeric", handler="numeric.main", runtime=lambda_.Runtime.PYTHON_3_10)

    message = synth_error(workspace, populate, docker_fallback=False)
    assert_names(message, "2 builds failed", "Stack/Num\n", "Stack/Num2", "numpy==2.4.6", "requires Python")
