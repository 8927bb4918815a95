"""The Docker fallback: only a dependency with no wheel for the target goes to a container, and how it runs.

There is no Docker engine on our machines: a recording runner stands in for `docker` (uv and Python stay
real), and the container's work is simulated by writing what it would install into the mounted folder.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
from aws_cdk import aws_lambda as lambda_
from fakes import ScriptedRunner, fail, mount_source, program, succeed
from helpers import add_function, synth_error

from cdk_uv_aspect import _uv
from cdk_uv_aspect._build import build
from cdk_uv_aspect._docker import BUILD_IMAGES, ROOT, ContainerInstall, Locked, build_image, container_python
from cdk_uv_aspect._errors import DockerError, ToolError, WheelError
from cdk_uv_aspect._lambda import RUNTIMES
from cdk_uv_aspect._options import UvOptions
from cdk_uv_aspect._request import BuildRequest
from cdk_uv_aspect._runner import Result, Runner
from cdk_uv_aspect._target import Target
from cdk_uv_aspect._workspace import Workspace

# numpy 2.4 has no manylinux2014 wheel for x86_64: the fixture package "numeric" on python3.11 can't be
# built here (a real uv error), and is the case the container exists for.
NUMERIC_311 = Target("3.11", "x86_64")


def docker_runner(*, engine: bool = True, container_ok: bool = True, fail_install: str | None = None) -> ScriptedRunner:
    """Real uv and Python; `docker` answers as a working engine would (or not), and its calls are recorded."""

    def container(args: list[str]) -> Result:
        runner.locked = Path(mount_source(args, f"{ROOT}/locked.txt")).read_text()
        if not container_ok:
            return Result(tuple(args), 1, "", "error: Failed to build `numpy==2.4.6`: no C compiler")
        site = Path(mount_source(args, f"{ROOT}/asset"))
        (site / "numpy").mkdir()
        (site / "numpy" / "__init__.py").write_text("built_in_container = True\n")
        return Result(tuple(args), 0, "", "")

    runner = ScriptedRunner()
    if fail_install:
        runner.when(lambda args: "--require-hashes" in args, fail(2, fail_install))
    runner.when(
        lambda args: args[:2] == ["docker", "version"],
        succeed("27.3.1\n") if engine else fail(1, "Cannot connect to the Docker daemon"),
    )
    runner.when(lambda args: args[:2] == ["docker", "run"], container)
    return runner


def numeric_request(workspace: Path, **options) -> BuildRequest:
    return BuildRequest(Workspace.find(workspace), "numeric", NUMERIC_311, UvOptions(**options))


@pytest.mark.slow
def test_dependency_without_a_wheel_is_built_in_a_container_and_the_rest_locally(workspace: Path, cache_dir: Path):
    """The real uv refuses numpy for Amazon Linux 2; the locked install then runs in the container."""
    runner = docker_runner()
    built = build(numeric_request(workspace), runner)
    version, run = runner.calls_to(program("docker"))
    assert version == ["docker", "version", "--format", "{{.Server.Version}}"]
    assert (built.asset_dir / "numpy" / "__init__.py").read_text() == "built_in_container = True\n"
    assert "numpy==2.4.6" in runner.locked and "--hash=sha256:" in runner.locked
    assert (built.asset_dir / "numeric" / "__init__.py").is_file()  # the workspace package: built locally
    assert list(built.asset_dir.glob("numeric/__pycache__/*.cpython-311.pyc"))  # bytecode: locally too
    image = "quay.io/pypa/manylinux2014_x86_64@sha256:"
    assert run[:5] == ["docker", "run", "--rm", "--platform", "linux/amd64"]
    assert run[run.index("--user") + 1] == f"{os.getuid()}:{os.getgid()}"
    command = run[run.index(next(a for a in run if a.startswith(image))) + 1 :]
    assert command == _uv.install_locked(
        "uv",
        NUMERIC_311,
        Path(f"{ROOT}/asset"),
        Path(f"{ROOT}/locked.txt"),
        python="/opt/python/cp311-cp311/bin/python",
    )
    envs = {run[i + 1] for i, a in enumerate(run) if a == "--env"}
    assert {f"{k}={v}" for k, v in _uv.UV_ENV.items()} <= envs
    assert f"UV_CACHE_DIR={ROOT}/uv-cache" in envs
    uv_cache = Runner().run([_uv.Uv.locate(None).path, "cache", "dir"]).stdout.strip()
    assert mount_source(run, f"{ROOT}/uv-cache") == uv_cache


def test_container_command_is_the_local_install_without_the_foreign_platform_flags():
    """One source of truth: the container runs _uv.install_locked, minus what only a foreign platform needs."""
    target = Target("3.12", "arm64")
    local = _uv.install_locked("uv", target, Path(f"{ROOT}/asset"), Path(f"{ROOT}/locked.txt"))
    inside = ContainerInstall(target, Path("/s"), Locked(Path("/r.txt")), Path("/c")).command
    foreign = {"--python-platform", target.python_platform, "--python-version", target.python, "--no-build"}
    python = "/opt/python/cp312-cp312/bin/python"
    assert inside == [python if a == sys.executable else a for a in local if a not in foreign]
    assert {"--require-hashes", "--no-deps", "--quiet"} <= set(inside)


@pytest.mark.parametrize("python", [r.python for r in RUNTIMES.values() if r.os.name != "Amazon Linux 1"])
@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_every_target_has_an_image_pinned_by_digest_of_its_glibc_and_machine(python: str, arch: str):
    """AL2 runtimes build on manylinux2014 (glibc 2.17), AL2023 on manylinux_2_34; one image per machine."""
    target = Target(python, arch)
    image = build_image(target)
    assert re.fullmatch(r"quay\.io/pypa/[a-z0-9_]+@sha256:[0-9a-f]{64}", image)
    policy = "manylinux2014" if target.glibc == "2.26" else "manylinux_2_34"
    assert image.startswith(f"quay.io/pypa/{policy}_{target.machine}@")
    args = ContainerInstall(target, Path("/s"), Locked(Path("/r")), Path("/c")).args("docker")
    assert args[args.index("--platform") + 1] == {"x86_64": "linux/amd64", "arm64": "linux/arm64"}[arch]
    assert container_python(target) in args
    assert len(BUILD_IMAGES) == 4


@pytest.mark.slow
def test_fallback_turned_off_keeps_the_wheel_error(workspace: Path, cache_dir: Path):
    runner = docker_runner()
    with pytest.raises(WheelError, match=r"numpy==2\.4\.6 has no wheel that loads on Amazon Linux 2"):
        build(numeric_request(workspace, docker_fallback=False), runner)
    assert runner.calls_to(program("docker")) == []


@pytest.mark.slow
def test_other_install_failures_never_go_to_docker(workspace: Path, cache_dir: Path):
    """A network or hash failure would fail in a container too: no Docker, the uv error as it is."""
    runner = docker_runner(fail_install="error: Hash mismatch for `orjson==3.13.0`")
    with pytest.raises(ToolError, match=r"orjson==3\.13\.0 does not have a hash that uv\.lock records"):
        build(BuildRequest(Workspace.find(workspace), "api", Target("3.12", "x86_64"), UvOptions()), runner)
    assert runner.calls_to(program("docker")) == []


@pytest.mark.slow
def test_no_docker_engine_says_what_needed_docker_and_why(
    workspace: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    """A client with no engine: the message names the function, the dependency, why Docker, and the ways out."""
    monkeypatch.setenv("CDK_DOCKER", "/usr/local/bin/docker")
    no_engine = fail(1, "Cannot connect to the Docker daemon at unix:///var/run/docker.sock\n")
    runner = ScriptedRunner().when(program("docker"), no_engine)  # as the real client answers without an engine
    message = synth_error(
        workspace,
        lambda s: add_function(s, "Num", "numeric", handler="numeric.main", runtime=lambda_.Runtime.PYTHON_3_11),
        runner=runner,
    )
    (probe,) = runner.calls_to(program("docker"))
    assert probe == ["/usr/local/bin/docker", "version", "--format", "{{.Server.Version}}"]
    for part in (
        "Stack/Num",
        "package:   numeric",
        "numpy==2.4.6 has no wheel",
        "glibc 2.26",
        "needs Docker (or podman)",
        "$CDK_DOCKER names no working engine",
        "Cannot connect to the Docker daemon",
        "fix $CDK_DOCKER (or start its engine), or unset it to use docker or podman",
        "pin a release",
    ):
        assert part in message, f"{part!r} not in:\n{message}"
    assert not any((cache_dir / "builds").iterdir())


@pytest.mark.slow
def test_failed_container_build_reports_its_output(workspace: Path, cache_dir: Path):
    with pytest.raises(DockerError) as error:
        build(numeric_request(workspace), docker_runner(container_ok=False))
    message = str(error.value)
    assert "building the locked dependencies in a container failed" in message
    assert "no C compiler" in message and "docker_fallback=False" in message
    assert not any((cache_dir / "builds").iterdir())


@pytest.mark.slow
def test_no_docker_client_is_named_in_the_error(workspace: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CDK_DOCKER", "/nonexistent/docker")
    with pytest.raises(DockerError, match="`/nonexistent/docker` is not installed"):
        build(numeric_request(workspace), Runner())


@pytest.mark.slow
def test_podman_runs_the_container_when_no_docker_engine_answers(
    workspace: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    """The CDK's choice, then podman: a docker client without an engine gives way to podman, which runs it."""
    monkeypatch.delenv("CDK_DOCKER", raising=False)
    runner = ScriptedRunner()
    runner.when(lambda args: args[:2] == ["docker", "version"], fail(1, "Cannot connect to the Docker daemon"))
    runner.when(lambda args: args[:2] == ["podman", "version"], succeed("4.3.1\n"))
    runner.when(lambda args: args[:2] == ["podman", "run"], succeed())
    build(numeric_request(workspace), runner)
    (run,) = runner.calls_to(lambda args: args[:2] == ["podman", "run"])
    assert run[2:5] == [
        "--rm",
        "--platform",
        "linux/amd64",
    ] and "quay.io/pypa/manylinux2014_x86_64@sha256:" in " ".join(run)
    assert runner.calls_to(program("docker")) == [["docker", "version", "--format", "{{.Server.Version}}"]]
