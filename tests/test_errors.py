"""Bad input: each stops synthesis with an error naming construct, package, target and fix; nothing lost."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk import Stack
from aws_cdk import aws_lambda as lambda_
from fakes import ScriptedRunner, fail, succeed, uv_command
from helpers import REPO, add_function, assert_complete_error, synth_error, tree_digest

from cdk_uv_aspect import UvCode
from cdk_uv_aspect._build import build
from cdk_uv_aspect._errors import ToolError
from cdk_uv_aspect._options import UvOptions
from cdk_uv_aspect._request import BuildRequest
from cdk_uv_aspect._target import Target
from cdk_uv_aspect._uv import Uv
from cdk_uv_aspect._workspace import Workspace

pytestmark = [pytest.mark.slow, pytest.mark.oldest_uv]

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


def test_a_stale_lock_is_reported_once_for_every_function(workspace: Path, cache_dir: Path):
    """Two functions of one package (two targets) and one of another: one error naming each construct,
    package and target, with uv's words and not the `uv export` command of each build."""
    pyproject = workspace / "packages" / "api" / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"orjson>=3.10"', '"orjson>=3.10", "six"'))

    def populate(stack: Stack) -> None:
        add_function(stack, "Api", "api")
        add_function(stack, "ApiArm", "api", architecture=lambda_.Architecture.ARM_64)
        add_function(stack, "Common", "common", handler="common.greeting")

    message = synth_error(workspace, populate)
    assert message.count("uv.lock is out of date") == 1, message
    assert_complete_error(
        message,
        construct="Stack/Api, Stack/ApiArm, Stack/Common",
        package="api, common",
        target=f"{AL2023_X86}; python3.12 arm64 (Amazon Linux 2023, glibc 2.34)",
        fix="run `uv lock`",
        also=["The lockfile at `uv.lock` needs to be updated"],  # uv 0.8 without "error: "
    )
    assert "uv export" not in message and "command:" not in message, message


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


def test_one_bad_marker_fails_fast_and_alone(workspace: Path, cache_dir: Path):
    """A marker that can't be planned stops every build (the synth fails in seconds); the functions left
    unbuilt because of it are not reported as well."""

    def populate(stack: Stack) -> None:
        add_function(stack, "Api", "api")
        add_function(stack, "Typo", "apii")

    message = synth_error(workspace, populate)
    assert message.count("] cdk-uv-aspect: ") == 1 and "[Stack/Typo] cdk-uv-aspect: package 'apii'" in message
    assert not (cache_dir / "builds").exists() or not any((cache_dir / "builds").iterdir())


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


# --- what a user sees: through the CDK CLI and `python app.py` ------------------------------------

CDK = REPO / "node_modules" / ".bin" / "cdk"
APP = """\
from aws_cdk import App, Aspects, Stack
from aws_cdk import aws_lambda as lambda_
from cdk_uv_aspect import UvBundlingAspect, UvCode, mark_package

app = App()
fn = lambda_.Function(Stack(app, "Stack"), "Api", runtime=lambda_.Runtime.PYTHON_3_12, handler="api.handler.main",
                      code=UvCode())
mark_package(fn, "{package}")
Aspects.of(app).add(UvBundlingAspect({options}))
app.synth()
"""


def write_app(folder: Path, package: str, options: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "app.py").write_text(APP.format(package=package, options=options))
    (folder / "cdk.json").write_text(json.dumps({"app": f"{sys.executable} app.py"}))
    return folder / "app.py"


def run(args: list[str], cwd: Path, cache_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "CDK_UV_CACHE_DIR": str(cache_dir), **env}
    return subprocess.run(args, cwd=cwd, env=environment, capture_output=True, text=True, timeout=600)


def stderr_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    """stderr without Node's own banner (an end-of-life notice framed in "!!")."""
    return [line for line in done.stderr.splitlines() if "!!" not in line]


def test_an_error_prints_once_without_a_traceback_through_the_cli_and_python_app_py(workspace: Path, cache_dir: Path):
    """A marker naming a missing package: through `cdk synth` and `python app.py`, the message once, in a few
    lines, with construct, package, target and fix, no traceback, and a non-zero exit; CDK_UV_DEBUG=1 shows one."""
    folder = workspace / "infra"
    write_app(folder, "apii")
    for args in ([str(CDK), "synth", "--quiet"], [sys.executable, "app.py"]):
        done = run(args, folder, cache_dir)
        lines = stderr_lines(done)
        assert done.returncode != 0, done.stderr
        assert len(lines) <= 15, "\n".join(lines)
        text = "\n".join(lines)
        assert text.count("package 'apii' is not in the workspace") == 1, text
        assert "Traceback" not in text and not re.search(r"^\s*at .*:\d+:\d+\)?$", text, re.MULTILINE), text
        assert_complete_error(
            text,
            construct="Stack/Api",
            package="apii",
            target=AL2023_X86,
            fix="fix the name in the marker",
            also=[f"the nearest uv.lock above the current directory {folder.resolve()}"],
        )
    debugged = run([sys.executable, "app.py"], folder, cache_dir, CDK_UV_DEBUG="1")
    assert debugged.returncode != 0 and "Traceback (most recent call last)" in debugged.stderr


def test_uv_colours_never_reach_a_message(workspace: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """FORCE_COLOR in the environment (CI sets it): uv's output is still quoted as plain text."""
    monkeypatch.setenv("FORCE_COLOR", "1")
    pyproject = workspace / "packages" / "api" / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"orjson>=3.10"', '"orjson>=3.10", "six"'))
    message = synth_error(workspace, lambda s: add_function(s, "Api", "api"))
    assert "out of date" in message and "| " in message
    assert "\x1b" not in message


def test_the_workspace_is_found_from_the_app_s_folder_and_said_once(workspace: Path, cache_dir: Path, tmp_path: Path):
    """`python path/to/app.py` run from a folder outside any workspace: the app's folder decides, and a line
    says which workspace was used and how to pick another."""
    write_app(workspace / "infra", "api")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = run([sys.executable, str(workspace / "infra" / "app.py")], elsewhere, cache_dir)
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stderr.splitlines() if "uv workspace" in line]
    assert said == [
        f"cdk-uv-aspect: uv workspace {workspace.resolve()}: the nearest uv.lock above the app's folder "
        f"{workspace / 'infra'} (UvBundlingAspect(workspace=...) picks another)"
    ]


def test_a_cdk_app_that_is_its_own_uv_project_beside_the_lambda_code_is_told_where_the_package_is(
    workspace: Path, cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """infra/ (the CDK app, its own uv.lock) beside backend/ (the functions' workspace): synthesized from
    infra/, the aspect picks infra's lock; the error names backend/ and the `workspace=` that fixes it."""
    repo = tmp_path / "repo"
    backend = repo / "backend"
    shutil.copytree(workspace, backend)
    infra = repo / "infra"
    infra.mkdir(parents=True)
    (infra / "pyproject.toml").write_text('[project]\nname = "infra"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n')
    subprocess.run([Uv.locate(None).path, "lock", "--quiet", "--offline"], cwd=infra, check=True)
    monkeypatch.chdir(infra)
    message = synth_error(None, lambda s: add_function(s, "Api", "api"))
    assert_complete_error(
        message,
        construct="Stack/Api",
        package="api",
        target=AL2023_X86,
        fix='UvBundlingAspect(workspace="../backend")',
        also=[
            f"'api' is not in the workspace at {infra.resolve()}",
            f"the nearest uv.lock above the current directory {infra.resolve()}",
            f"package 'api' is in the uv workspace at {backend.resolve()}",
        ],
    )
