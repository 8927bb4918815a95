"""The container engine: which one (as the CDK chooses), the CDK's image build, a run inside an image.

Through the runner seam: every engine command is scripted here, so these run on any machine. The same code
builds and runs real images in tests/test_image_real.py where an engine exists.
"""

from __future__ import annotations

import json
import platform
import re
from pathlib import Path

import pytest
from fakes import ScriptedRunner, fail, program, succeed
from helpers import REPO, assert_complete_error

from cdk_uv_aspect._assembly import ImageAsset
from cdk_uv_aspect._engine import Engine, NoEngine, build_args, cannot_run, find_engine
from cdk_uv_aspect._errors import EngineError
from cdk_uv_aspect._imagestart import invoke_image
from cdk_uv_aspect._lambda import HOST_MACHINES

NO_DAEMON = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"
# What podman 4.3 says when its OCI runtime can't create a container in a nested sandbox (measured).
REFUSED = "Error: crun: setrlimit `RLIMIT_NOFILE`: Operation not permitted: OCI permission denied"


def version(client: str):
    return lambda args: Path(args[0]).name == client and args[1:2] == ["version"]


def test_cdk_docker_is_the_only_client_tried_when_set(monkeypatch: pytest.MonkeyPatch):
    """$CDK_DOCKER names the client, as for the CDK: no engine answers, and no other engine is tried."""
    monkeypatch.setenv("CDK_DOCKER", "my-docker")
    runner = ScriptedRunner().when(version("my-docker"), fail(1, "Cannot connect to the engine"))
    found = find_engine(runner)
    assert isinstance(found, NoEngine)
    assert [call[0] for call in runner.calls] == ["my-docker"]
    assert "$CDK_DOCKER names no working engine" in found.reason and "Cannot connect to the engine" in found.reason
    assert "unset it to use docker or podman" in found.fix


def test_docker_comes_first_then_podman(monkeypatch: pytest.MonkeyPatch):
    """No $CDK_DOCKER: docker when its engine answers; a docker client without an engine gives way to podman."""
    monkeypatch.delenv("CDK_DOCKER", raising=False)
    answering = ScriptedRunner().when(version("docker"), succeed("28.2.2\n"))
    assert find_engine(answering) == Engine("docker", answering)
    runner = ScriptedRunner().when(version("docker"), fail(1, NO_DAEMON)).when(version("podman"), succeed("4.3.1\n"))
    found = find_engine(runner)
    assert isinstance(found, Engine) and found.client == "podman"
    assert str(found) == "podman"


def test_no_engine_says_what_was_tried_and_how_to_get_one(monkeypatch: pytest.MonkeyPatch):
    """Neither client installed: both named, and the ways to get an engine."""
    monkeypatch.delenv("CDK_DOCKER", raising=False)
    runner = (
        ScriptedRunner()
        .when(version("docker"), fail(127, "docker: No such file"))
        .when(version("podman"), fail(127, "podman: No such file"))
    )
    found = find_engine(runner)
    assert isinstance(found, NoEngine)
    for part in ("no container engine answered", "`docker` is not installed", "`podman` is not installed"):
        assert part in found.reason, found.reason
    assert "start Docker" in found.fix and "apt-get install podman buildah" in found.fix and "$CDK_DOCKER" in found.fix


def asset(tmp_path: Path, **source: object) -> ImageAsset:
    (tmp_path / "asset.abc").mkdir(exist_ok=True)
    return ImageAsset("ABC123", {"directory": "asset.abc", **source}, tmp_path, "Stack/Img/UvAsset")


def test_build_runs_cdk_assets_command_in_the_asset_folder_under_its_cdkasset_tag(tmp_path: Path):
    """No image under cdkasset-<id>: `build` with the asset's arguments, in its folder; the tag is returned."""
    runner = ScriptedRunner().when(lambda args: args[1] == "build", succeed())
    runner.when(lambda args: args[1] == "inspect", fail(1, "Error: No such object: cdkasset-abc123"))
    engine = Engine("docker", runner)
    tag, reused = engine.build(asset(tmp_path, platform="linux/arm64", dockerBuildArgs={"PYTHON_VERSION": "3.13"}))
    assert (tag, reused) == ("cdkasset-abc123", False)
    inspect, build = runner.calls
    assert inspect == ["docker", "inspect", "cdkasset-abc123"]
    assert build == [
        "docker",
        "build",
        "--build-arg",
        "PYTHON_VERSION=3.13",
        "--tag",
        "cdkasset-abc123",
        "--platform",
        "linux/arm64",
        ".",
    ]


def test_an_image_already_under_its_tag_is_reused_as_cdk_deploy_does(tmp_path: Path):
    """The asset id is the hash of everything in the image: an image under cdkasset-<id> is not built again."""
    runner = ScriptedRunner().when(program("docker"), succeed("[{}]"))
    assert Engine("docker", runner).build(asset(tmp_path)) == ("cdkasset-abc123", True)
    assert runner.calls == [["docker", "inspect", "cdkasset-abc123"]]


def test_a_failed_build_shows_its_output_with_build_argument_values_masked(tmp_path: Path):
    """As cdk-assets logs it: --build-arg values may be secrets, so the command shows their names only."""
    runner = ScriptedRunner().when(lambda args: args[1] == "inspect", fail(1, "No such object"))
    runner.when(lambda args: args[1] == "build", fail(1, "Error: initializing source docker://public.ecr.aws/..."))
    with pytest.raises(EngineError) as error:
        Engine("docker", runner).build(asset(tmp_path, dockerBuildArgs={"TOKEN": "s3cr3t"}))
    message = str(error.value)
    assert_complete_error(
        message,
        construct=None,
        package=None,
        target=None,
        fix="a base image that can't be pulled needs network access",
        also=["`docker build` of the image asset Stack/Img/UvAsset failed", "--build-arg TOKEN=***", "initializing"],
    )
    assert "s3cr3t" not in message


def test_podman_that_cant_start_containers_runs_the_command_with_buildah_in_its_storage():
    """`podman run` refused by its OCI runtime: buildah runs the command in podman's storage, then is cleaned up."""
    store = {"graphRoot": "/r/storage", "runRoot": "/r/run", "graphDriverName": "vfs"}
    runner = ScriptedRunner()
    runner.when(lambda args: args[1] == "run" and args[0] == "podman", fail(126, REFUSED))
    runner.when(lambda args: args[1:] == ["--version"] and args[0] == "podman", succeed("podman version 4.3.1\n"))
    runner.when(lambda args: args[1] == "info", succeed(json.dumps(store)))
    runner.when(lambda args: args[0] == "buildah" and "run" in args, succeed("logs\0{}"))
    runner.when(program("buildah"), succeed("buildah version 1.28.2\n"))
    engine = Engine("podman", runner)
    for _ in range(2):
        assert engine.run("cdkasset-abc", ["/bin/true", "x"], env={"A": "1"}).stdout == "logs\0{}"
    assert engine.refused == REFUSED
    assert len(runner.calls_to(lambda args: args[:2] == ["podman", "run"])) == 1  # refused once, then remembered
    made = runner.calls_to(lambda args: args[0] == "buildah" and "from" in args)[0]
    run = runner.calls_to(lambda args: args[0] == "buildah" and "run" in args)[0]
    storage = ["--root", "/r/storage", "--runroot", "/r/run", "--storage-driver", "vfs"]
    assert made[1:7] == storage and made[-1] == "cdkasset-abc"
    name = made[made.index("--name") + 1]
    assert run[7:] == ["run", "--isolation", "chroot", "--env", "A=1", name, "--", "/bin/true", "x"]
    assert len(runner.calls_to(lambda args: args[0] == "buildah" and "rm" in args)) == 2


def test_a_refused_run_without_buildah_says_where_it_can_run():
    runner = ScriptedRunner().when(program("buildah"), fail(127, "buildah: No such file"))
    runner.when(lambda args: args[1] == "run", fail(126, REFUSED))
    runner.when(lambda args: args[1:] == ["--version"], succeed("podman version 4.3.1\n"))
    runner.when(
        lambda args: args[1] == "info", succeed('{"graphRoot": "/r", "runRoot": "/rr", "graphDriverName": "vfs"}')
    )
    with pytest.raises(EngineError) as error:
        Engine("podman", runner).run("img", ["/bin/true"])
    message = str(error.value)
    assert "`podman run` can't start a container on this machine: Error: crun: setrlimit" in message
    assert "run it where the engine can start containers" in message and "apt-get install buildah" in message


def test_image_invoke_runs_the_bootstrap_with_the_images_python_and_lambdas_variables():
    """`/var/lang/bin/python3 -I -S -B -c BOOTSTRAP CONFIG` (/var/task, the handler...), the event on stdin,
    Lambda's variables."""
    runner = ScriptedRunner().when(program("docker"), succeed('printed\n\0{"ok": 1}'))
    answer = invoke_image(
        Engine("docker", runner),
        "cdkasset-abc",
        "api.handler.main",
        {"name": "x"},
        architecture="arm64",
        name="Img",
        memory=256,
        environment={"STAGE": "dev"},
    )
    assert (answer.ok, answer.result, answer.logs) == (True, {"ok": 1}, "printed\n")
    (run,) = runner.calls
    assert run[:7] == ["docker", "run", "--rm", "-i", "--platform", "linux/arm64", "--entrypoint"]
    assert run[7] == "/var/lang/bin/python3"
    envs = {run[i + 1] for i, arg in enumerate(run) if arg == "--env"}
    assert envs == {
        "STAGE=dev",
        "AWS_LAMBDA_FUNCTION_NAME=Img",
        "AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256",
        "AWS_EXECUTION_ENV=AWS_Lambda_Image",
    }
    image = run.index("cdkasset-abc")
    assert run[image + 1 : image + 5] == ["-I", "-S", "-B", "-c"]  # -B: nothing written into /var/task
    config = json.loads(run[image + 6])
    assert config == {
        "task": "/var/task",
        "handler": "api.handler.main",
        "name": "Img",
        "memory": 256,
        "timeout": 900,
        "region": "us-east-1",
        "mode": "invoke",
        "limit": 6_291_556,
    }
    assert len(run) == image + 7


def test_a_container_that_dies_before_answering_is_an_exit_error():
    runner = ScriptedRunner().when(program("docker"), fail(127, "exec: /var/lang/bin/python3: not found"))
    answer = invoke_image(Engine("docker", runner), "img", "h.main", {})
    assert not answer.ok
    assert answer.result == {"errorType": "Runtime.ExitError", "errorMessage": "exec: /var/lang/bin/python3: not found"}


def test_this_machines_own_architecture_always_runs():
    host = HOST_MACHINES.get(platform.machine().lower(), platform.machine())
    assert cannot_run(host) == ""


@pytest.mark.slow  # reads the CDK CLI in node_modules
def test_build_arguments_follow_the_cdk_clis_own_docker_build():
    """Every source field the installed CDK CLI passes to `docker build`, as the same flags in its order."""
    bundle = (REPO / "node_modules" / "aws-cdk" / "lib" / "index.js").read_text()
    builder = bundle[bundle.index("async buildImage(localTagName)") :]
    fields = set(re.findall(r"source\.(\w+)", builder[: builder.index("async isImageCached")])) - {"directory"}
    docker = bundle[bundle.index('"../@aws-cdk/cdk-assets-lib/lib/private/docker.ts"() {') :]
    command = docker[docker.index("async build(options)") : docker.index("await this.execute(buildCommand")]
    cli_flags = re.findall(r"[\"`](--[a-z-]+=?)", command)
    full = {field: _example(field) for field in fields}
    ours = [a.split("=")[0] + ("=" if a.startswith("--output=") else "") for a in build_args(full, "t")]
    assert list(dict.fromkeys(a for a in ours if a.startswith("--"))) == cli_flags
    assert len(cli_flags) == 13, "cdk-assets passes other flags now"


def _example(field: str) -> object:
    if field in ("dockerBuildArgs", "dockerBuildContexts", "dockerBuildSecrets"):
        return {"A": "1", "B": "2"}
    if field == "dockerOutputs":
        return ["type=docker"]
    if field == "cacheFrom":
        return [{"type": "registry", "params": {"ref": "r"}}]
    if field == "cacheTo":
        return {"type": "inline"}
    return True if field == "cacheDisabled" else "value"
