"""Bad input: each stops synthesis with an error naming construct, package, target and fix; nothing lost."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from aws_cdk import Stack
from aws_cdk import aws_lambda as lambda_
from conftest import add_function, assert_complete_error, synth_error, tree_digest
from fakes import ScriptedRunner, fail, succeed, uv_command

from cdk_uv_aspect import UvCode
from cdk_uv_aspect._build import BuildRequest, build
from cdk_uv_aspect._errors import ToolError
from cdk_uv_aspect._options import UvOptions
from cdk_uv_aspect._target import Target
from cdk_uv_aspect._workspace import Workspace

pytestmark = pytest.mark.slow

AL2023_X86 = "python3.12 x86_64 (Amazon Linux 2023, glibc 2.34)"


def test_package_not_in_the_workspace(workspace: Path, cache_dir: Path):
    message = synth_error(workspace, lambda s: add_function(s, "Api", "apii"))
    assert_complete_error(
        message,
        construct="Stack/Api",
        package="apii",
        target=AL2023_X86,
        fix="fix the name in the marker",
        also=["'apii' is not in the workspace", "api, app, common"],
    )


def test_no_workspace_above_the_current_directory(tmp_path: Path, cache_dir: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    message = synth_error(None, lambda s: add_function(s, "Api", "api"))
    assert_complete_error(
        message,
        construct="Stack/Api",
        package="api",
        target=AL2023_X86,
        fix="UvOptions(workspace=",
        also=["no uv.lock in"],
    )


def test_missing_lock(workspace: Path, cache_dir: Path):
    (workspace / "uv.lock").unlink()
    message = synth_error(workspace, lambda s: add_function(s, "Api", "api"))
    assert_complete_error(
        message, construct="Stack/Api", package="api", target=AL2023_X86, fix="run `uv lock`", also=["no uv.lock"]
    )


def test_stale_lock_is_refused_and_left_as_it_is(workspace: Path, cache_dir: Path):
    """A dependency added without `uv lock`: the error says to run it; uv.lock is not rewritten."""
    pyproject = workspace / "packages" / "api" / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"orjson>=3.10"', '"orjson>=3.10", "six"'))
    lock_before = (workspace / "uv.lock").read_bytes()
    message = synth_error(workspace, lambda s: add_function(s, "Api", "api"))
    assert_complete_error(
        message, construct="Stack/Api", package="api", target=AL2023_X86, fix="run `uv lock`", also=["out of date"]
    )
    assert (workspace / "uv.lock").read_bytes() == lock_before


def test_marker_on_a_non_python_runtime(workspace: Path, cache_dir: Path):
    def populate(stack: Stack) -> None:
        fn = lambda_.Function(
            stack, "Node", runtime=lambda_.Runtime.NODEJS_20_X, handler="index.handler", code=UvCode()
        )
        fn.node.add_metadata("uv", "api")

    message = synth_error(workspace, populate)
    assert_complete_error(
        message,
        construct="Stack/Node",
        package="api",
        target=None,  # there is none: that is the error
        fix="give it a Python runtime",
        also=["nodejs20.x, not a Python runtime"],
    )


def test_marker_with_wrong_data_type(workspace: Path, cache_dir: Path):
    def populate(stack: Stack) -> None:
        add_function(stack, "Api", None).node.add_metadata("uv", ["api"])

    message = synth_error(workspace, populate)
    assert_complete_error(
        message,
        construct="Stack/Api",
        package=None,  # the marker names none
        target=AL2023_X86,
        fix='fn.node.add_metadata("uv", "<package>")',
        also=["must be a package name", "['api']"],
    )


def test_dependency_without_a_wheel_for_amazon_linux_2(workspace: Path, cache_dir: Path):
    """numpy 2.4 ships only manylinux_2_28 x86_64 wheels: it would install, then fail at import on AL2."""
    before = tree_digest(workspace)
    message = synth_error(
        workspace,
        lambda s: add_function(s, "Num", "numeric", handler="numeric.main", runtime=lambda_.Runtime.PYTHON_3_11),
        docker_fallback=False,
    )  # the wheel error itself, whether or not this machine has Docker
    assert_complete_error(
        message,
        construct="Stack/Num",
        package="numeric",
        target="python3.11 x86_64 (Amazon Linux 2, glibc 2.26)",
        fix="pin a release",
        also=["numpy==2.4.6", "python3.12+"],
    )
    assert tree_digest(workspace) == before


def test_package_whose_requires_python_excludes_the_runtime(workspace: Path, cache_dir: Path):
    message = synth_error(workspace, lambda s: add_function(s, "Old", "api", runtime=lambda_.Runtime.PYTHON_3_10))
    assert_complete_error(
        message,
        construct="Stack/Old",
        package="api",
        target="python3.10 x86_64 (Amazon Linux 2, glibc 2.26)",
        fix="widen requires-python",
        also=["requires Python >=3.11"],
    )


def test_missing_interpreter_for_bytecode_says_how_to_go_on(workspace: Path, cache_dir: Path):
    """No python3.14 on this machine: a clear error; with bytecode=False the same build succeeds."""
    request = BuildRequest(Workspace.find(workspace), "app", Target("3.14", "x86_64"), UvOptions())
    with pytest.raises(ToolError) as error:
        build(request)
    assert_complete_error(
        str(error.value),
        construct=None,  # a build outside any synth: `cdk-uv build`
        package="app",
        target="python3.14 x86_64 (Amazon Linux 2023, glibc 2.34)",
        fix="uv python install 3.14",
        also=["no Python 3.14 interpreter", "UvOptions(bytecode=False)"],
    )
    built = build(BuildRequest(request.workspace, "app", request.target, UvOptions(bytecode=False)))
    assert (built.asset_dir / "main.py").is_file()


def test_uv_older_than_supported(workspace: Path, cache_dir: Path):
    old_uv = ScriptedRunner().when(lambda args: args[1:] == ["--version"], succeed("uv 0.5.0\n"))
    message = synth_error(workspace, lambda s: add_function(s, "Api", "api"), runner=old_uv)
    assert_complete_error(
        message, construct="Stack/Api", package="api", target=AL2023_X86, fix="upgrade uv", also=["older than 0.8.0"]
    )


def test_uv_missing(workspace: Path, cache_dir: Path, tmp_path: Path):
    message = synth_error(workspace, lambda s: add_function(s, "Api", "api"), uv=str(tmp_path / "nope" / "uv"))
    assert_complete_error(
        message, construct="Stack/Api", package="api", target=AL2023_X86, fix="UvOptions(uv=", also=["uv was not found"]
    )


def test_uv_failure_shows_its_command_and_stderr(workspace: Path, cache_dir: Path):
    request = BuildRequest(Workspace.find(workspace), "api", Target("3.12", "arm64"), UvOptions())
    broken_index = fail(
        2, "error: Failed to fetch: `https://pypi.example/simple/orjson/`\n  Caused by: HTTP status server error (503)"
    )
    with pytest.raises(ToolError) as error:
        build(request, runner=ScriptedRunner().when(uv_command("pip", "install"), broken_index))
    message = str(error.value)
    assert_complete_error(
        message,
        construct=None,
        package="api",
        target="python3.12 arm64 (Amazon Linux 2023, glibc 2.34)",
        fix="fix what uv reports below",
        also=["uv could not install", "exit code: 2", "HTTP status server error (503)"],
    )
    assert re.search(r"command:\s+\S+ pip install --target", message)


def test_several_failing_builds_are_all_reported(workspace: Path, cache_dir: Path):
    """Errors from builds run in parallel are reported together, each once, as a validation error of its function."""

    def populate(stack: Stack) -> None:
        add_function(stack, "Num", "numeric", handler="numeric.main", runtime=lambda_.Runtime.PYTHON_3_11)
        add_function(stack, "Num2", "numeric", handler="numeric.main", runtime=lambda_.Runtime.PYTHON_3_10)

    message = synth_error(workspace, populate, docker_fallback=False)
    assert message.startswith("ValidationFailedWithErrors: Validation failed with the following errors:")
    first, second = message.split("cdk-uv-aspect: ")[1:]
    assert "\n  [Stack/Num] cdk-uv-aspect: " in message and "\n  [Stack/Num2] cdk-uv-aspect: " in message
    assert_complete_error(
        first,
        construct="Stack/Num",
        package="numeric",
        target="python3.11 x86_64 (Amazon Linux 2, glibc 2.26)",
        fix="pin a release",
        also=["numpy==2.4.6"],
    )
    assert_complete_error(
        second,
        construct="Stack/Num2",
        package="numeric",
        target="python3.10 x86_64 (Amazon Linux 2, glibc 2.26)",
        fix="widen requires-python",
        also=["requires Python"],
    )


def test_an_unexpected_exception_in_a_build_is_named_and_reported_with_the_others(workspace: Path, cache_dir: Path):
    """A bug (any exception type) in one build: its function, package and target, beside another build's error."""

    def crash(args: list[str]):
        raise KeyError("surprise")

    runner = ScriptedRunner().when(
        lambda args: "orjson" in Path(args[-1]).read_text() if args[-2:-1] == ["-r"] else False, crash
    )

    def populate(stack: Stack) -> None:
        add_function(stack, "Api", "api")  # orjson: the crash
        add_function(stack, "Old", "api", runtime=lambda_.Runtime.PYTHON_3_10)  # requires-python: a UvError

    message = synth_error(workspace, populate, runner=runner)
    assert message.count("] cdk-uv-aspect: ") == 2  # each once, on its function
    assert_complete_error(
        message,
        construct="Stack/Api",
        package="api",
        target=AL2023_X86,
        fix="this is a bug in cdk-uv-aspect",
        also=["an unexpected KeyError stopped the build: 'surprise'", "Stack/Old", "requires Python >=3.11"],
    )
