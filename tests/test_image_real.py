"""Image functions for real: built from the cloud assembly as the CDK CLI builds them, run inside the image.

Needs an OCI engine (``$CDK_DOCKER``, ``docker`` or ``podman``: see tests/oci.py); without one every test
here is skipped with the reason. Base images are AWS's with Docker, local stand-ins with podman.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import oci
import pytest
from aws_cdk import Stack
from aws_cdk import aws_lambda as lambda_
from conftest import FIXTURES, REPO, add_function, python_for, synth_app
from oci import BaseImage, Engine, ImageFunction, folder_entries, image_functions
from test_samples import ANSWERS, EVENTS, cdk, copy_samples

from cdk_uv_aspect import mark_package, uv_image_code
from cdk_uv_aspect._assembly import AssemblyFunction, functions

# The fixture app's image functions: (construct id, package, handler, python, architecture, marker extras)
FIXTURE_IMAGES = [
    ("Api311", "api", "api.handler.main", "3.11", "x86_64", {}),
    ("Api312", "api", "api.handler.main", "3.12", "x86_64", {}),
    ("Api313", "api", "api.handler.main", "3.13", "x86_64", {}),
    ("ApiArm", "api", "api.handler.main", "3.13", "arm64", {}),
    ("App312", "app", "main.handler", "3.12", "x86_64", {}),
    ("Custom", "api", "api.handler.main", "3.12", "x86_64",
     {"dockerfile": "docker/api.Dockerfile", "build_args": {"BASE": "public.ecr.aws/lambda/python:3.12"}}),
]  # fmt: skip
# Zip functions of the same package and target as an image function: their assets must equal /var/task.
FIXTURE_ZIPS = [
    ("ApiZip312", "api", "api.handler.main", lambda_.Runtime.PYTHON_3_12, "x86_64", "Api312"),
    ("ApiZipArm", "api", "api.handler.main", lambda_.Runtime.PYTHON_3_13, "arm64", "ApiArm"),
    ("AppZip312", "app", "main.handler", lambda_.Runtime.PYTHON_3_12, "x86_64", "App312"),
]
USER_DOCKERFILE = 'ARG BASE\nFROM ${BASE}\nCOPY . /var/task/\nCMD ["api.handler.main"]\n'
ANSWER = {"api": {"message": "hello img", "version": "0.1.0"}, "app": {"message": "HELLO IMG!"}}
ARCHITECTURES = {"x86_64": lambda_.Architecture.X86_64, "arm64": lambda_.Architecture.ARM_64}
# The samples' image functions and the zip function built from the same package and target.
SAMPLE_IMAGES = {"UvSample/OrdersImage": ("orders", "3.12", "UvSample/Orders")}


@dataclass(frozen=True)
class Assembly:
    out: Path
    images: dict[str, ImageFunction]  # construct path -> image function
    zips: dict[str, AssemblyFunction]  # construct path -> zip function


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    found = oci.find_engine()
    if isinstance(found, str):
        pytest.skip(found)
    yield found
    found.cleanup()


@pytest.fixture(scope="module")
def base(engine: Engine) -> Callable[[str, str], BaseImage]:
    """The Lambda base image of a Python version and architecture, made (or pulled) once per session."""
    made: dict[tuple[str, str], BaseImage] = {}

    def get(python: str, architecture: str) -> BaseImage:
        if (python, architecture) not in made:
            made[python, architecture] = oci.base_image(engine, python, architecture, python_for(python))
        return made[python, architecture]

    return get


@pytest.fixture(scope="module")
def built(engine: Engine, base: Callable[[str, str], BaseImage]) -> Callable[[ImageFunction], str]:
    """Build an image function's asset once per module, its Lambda base images first; its local tag."""
    tags: dict[str, str] = {}

    def build(fn: ImageFunction) -> str:
        if fn.asset.id not in tags:
            for name in fn.asset.base_images():
                if name.startswith(oci.BASE_IMAGE + ":"):
                    base(name.rpartition(":")[2], fn.architecture)
            tags[fn.asset.id] = engine.build(fn.asset)
        return tags[fn.asset.id]

    return build


@pytest.fixture(scope="module")
def fixture_app(tmp_path_factory: pytest.TempPathFactory) -> Assembly:
    """The fixture workspace's image functions (and zip twins), synthesized once."""
    tmp = tmp_path_factory.mktemp("image-real")
    ws = tmp / "ws"
    shutil.copytree(FIXTURES / "ws", ws)
    (ws / "docker").mkdir()
    (ws / "docker" / "api.Dockerfile").write_text(USER_DOCKERFILE)

    def populate(stack: Stack) -> None:
        for name, package, handler, python, arch, extra in FIXTURE_IMAGES:
            fn = lambda_.DockerImageFunction(
                stack, name, architecture=ARCHITECTURES[arch], code=uv_image_code(stack, handler)
            )
            mark_package(fn, package, python=python, **extra)  # type: ignore[arg-type]
        for name, package, handler, runtime, arch, _ in FIXTURE_ZIPS:
            add_function(stack, name, package, handler=handler, runtime=runtime, architecture=ARCHITECTURES[arch])

    out = tmp / "out"
    synth_app(ws, populate, outdir=out, cache_dir=tmp / "cache")
    return _assembly(out)


@pytest.fixture(scope="module")
def samples_app(tmp_path_factory: pytest.TempPathFactory) -> Assembly:
    """samples/ synthesized with the real CDK CLI, as `./dev demo` does."""
    tmp = tmp_path_factory.mktemp("image-real-samples")
    samples = copy_samples(tmp / "samples")
    done = cdk(["synth", "--quiet", "--output", str(tmp / "out")], samples, tmp / "cache")
    assert done.returncode == 0, done.stderr
    return _assembly(tmp / "out")


def _assembly(out: Path) -> Assembly:
    return Assembly(
        out, {f.path: f for f in image_functions(out)}, {f.path: f for f in functions(out) if f.package_type == "Zip"}
    )


# --- the samples, through the real CDK CLI --------------------------------------------------------


@pytest.mark.slow
@pytest.mark.oci
@pytest.mark.parametrize("path", sorted(SAMPLE_IMAGES))
def test_sample_image_function_answers_from_inside_its_image(engine: Engine, samples_app: Assembly, built, path: str):
    """`cdk synth` on samples/, the CDK's image build, then the handler answers from /var/task in the image."""
    assert set(samples_app.images) == set(SAMPLE_IMAGES), "a sample image function is not covered here"
    package, python, _ = SAMPLE_IMAGES[path]
    fn = samples_app.images[path]
    tag = built(fn)
    event = json.loads((EVENTS / f"{package}.json").read_text())
    answer = engine.invoke(tag, fn.handler, event, architecture=fn.architecture, name=path.rpartition("/")[2])
    assert answer.ok, answer.result
    assert answer.result["body"] == ANSWERS[package]
    assert answer.result["python"].startswith(python + ".")  # the image's Python, not this machine's


@pytest.mark.slow
@pytest.mark.oci
@pytest.mark.parametrize("path", sorted(SAMPLE_IMAGES))
def test_sample_image_holds_exactly_the_zip_asset(engine: Engine, samples_app: Assembly, built, path: str):
    """/var/task in OrdersImage's image is Orders' zip asset byte for byte: same files, modes and content."""
    _, _, zip_path = SAMPLE_IMAGES[path]
    _assert_same_tree(engine.files(built(samples_app.images[path])), samples_app.zips[zip_path].asset_dir)


# --- the fixture app: every Python version, both architectures, a user Dockerfile ------------------

FIXTURE_PARAMS = [f[:5] for f in FIXTURE_IMAGES]
FIXTURE_IDS = [f[0] for f in FIXTURE_IMAGES]


@pytest.mark.slow
@pytest.mark.oci
@pytest.mark.parametrize(("name", "package", "handler", "python", "arch"), FIXTURE_PARAMS, ids=FIXTURE_IDS)
def test_image_function_builds_for_its_platform(
    engine: Engine,
    fixture_app: Assembly,
    built,
    name: str,
    package: str,
    handler: str,
    python: str,
    arch: str,
):
    """Each image builds from the assembly for the function's architecture, the handler under /var/task."""
    fn = fixture_app.images[f"Stack/{name}"]
    assert fn.asset.source["platform"] == oci.PLATFORMS[arch]
    assert fn.asset.base_images() == [f"{oci.BASE_IMAGE}:{python}"]
    tag = built(fn)
    assert engine.inspect(tag, "{{.Architecture}}") == oci.OCI_ARCH[arch]
    files = engine.files(tag)
    module = handler.rpartition(".")[0].replace(".", "/") + ".py"
    assert files[module][0] == "file"
    assert "Dockerfile" not in files and ".dockerignore" not in files  # the context's own files stay out


@pytest.mark.slow
@pytest.mark.oci
@pytest.mark.parametrize(("name", "package", "handler", "python", "arch"), FIXTURE_PARAMS, ids=FIXTURE_IDS)
def test_image_function_answers_from_inside_its_image(
    engine: Engine,
    fixture_app: Assembly,
    built,
    base,
    name: str,
    package: str,
    handler: str,
    python: str,
    arch: str,
):
    """The handler, imported from /var/task by the image's own Python, answers the event."""
    fn = fixture_app.images[f"Stack/{name}"]
    assert fn.handler == handler
    tag = built(fn)
    cannot = base(python, arch).runnable
    if cannot:
        pytest.skip(f"{name} built only: {cannot}")
    answer = engine.invoke(tag, fn.handler, {"name": "img"}, architecture=arch, name=name)
    assert answer.ok, answer.result
    assert answer.result == ANSWER[package]


@pytest.mark.slow
@pytest.mark.oci
@pytest.mark.parametrize(
    ("zip_name", "image_name"), [(z[0], z[5]) for z in FIXTURE_ZIPS], ids=[z[5] for z in FIXTURE_ZIPS]
)
def test_image_holds_exactly_the_zip_asset_of_its_package_and_target(
    engine: Engine, fixture_app: Assembly, built, zip_name: str, image_name: str
):
    """/var/task in the image is the zip asset of the same package and target, byte for byte (arm64 too)."""
    tag = built(fixture_app.images[f"Stack/{image_name}"])
    _assert_same_tree(engine.files(tag), fixture_app.zips[f"Stack/{zip_name}"].asset_dir)


@pytest.mark.slow
@pytest.mark.oci
def test_package_built_for_311_fails_at_import_in_a_312_image(
    engine: Engine, fixture_app: Assembly, built, base, tmp_path: Path
):
    """The marker's Python and the Dockerfile's FROM disagree: the 3.11 build can't import in the 3.12 image.

    The evidence for refusing it at synth: the same folder answers in its own 3.11 image and fails at
    import in the 3.12 one (orjson's extension module is built for CPython 3.11).
    """
    for python in ("3.11", "3.12"):
        if base(python, "x86_64").runnable:
            pytest.skip(base(python, "x86_64").runnable)
    fn = fixture_app.images["Stack/Api311"]
    assert fn.asset.base_images() == [f"{oci.BASE_IMAGE}:3.11"]
    assert engine.invoke(built(fn), fn.handler, {"name": "img"}).ok
    context = tmp_path / "context"
    shutil.copytree(fn.asset.directory, context, symlinks=True)
    dockerfile = context / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("python:3.11", "python:3.12"))
    tag = engine.build_directory(context, "api-311-in-312", platform="linux/amd64")
    answer = engine.invoke(tag, fn.handler, {"name": "img"})
    assert not answer.ok
    assert answer.result["errorType"] in ("ModuleNotFoundError", "ImportError"), answer.result
    assert "orjson" in answer.result["errorMessage"], answer.result


def _assert_same_tree(image: dict[str, tuple[str, int, bytes]], folder: Path | None) -> None:
    assert folder is not None and folder.is_dir()
    local = folder_entries(folder)
    assert sorted(image) == sorted(local), "different files under /var/task than in the zip asset"
    different = [rel for rel in local if image[rel] != local[rel]]
    assert not different, f"{len(different)} entries differ in content or mode, e.g. {different[:5]}"


# --- no engine: skipped with the reason, never silently -------------------------------------------


def test_no_engine_gives_a_reason_naming_what_was_tried_and_how_to_get_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    """Neither docker nor podman on PATH: the skip reason says what was tried and how to install one."""
    monkeypatch.delenv("CDK_DOCKER", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    reason = oci.find_engine.__wrapped__()
    assert isinstance(reason, str)
    for part in ("no OCI engine", "`docker` is not installed", "`podman` is not installed", "apt-get install"):
        assert part in reason, reason


def test_cdk_docker_is_the_only_engine_tried_when_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """$CDK_DOCKER names the client, as for the CDK: no other engine is tried in its place."""
    fake = tmp_path / "my-docker"
    fake.write_text("#!/bin/sh\necho 'Cannot connect to the engine' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("CDK_DOCKER", str(fake))
    reason = oci.find_engine.__wrapped__()
    assert isinstance(reason, str)
    assert "$CDK_DOCKER" in reason and "Cannot connect to the engine" in reason, reason
    assert "`podman" not in reason and "`docker" not in reason, reason  # nothing else was tried


# --- the build mirrors the CDK CLI's ----------------------------------------------------------------


def test_build_arguments_follow_the_cdk_clis_own_docker_build():
    """Every source field the installed CDK CLI passes to `docker build`, as the same flags in its order."""
    bundle = (REPO / "node_modules" / "aws-cdk" / "lib" / "index.js").read_text()
    builder = bundle[bundle.index("async buildImage(localTagName)") :]
    fields = re.findall(r"source\.(\w+)", builder[: builder.index("async isImageCached")])
    docker = bundle[bundle.index('"../@aws-cdk/cdk-assets-lib/lib/private/docker.ts"() {') :]
    command = docker[docker.index("async build(options)") : docker.index("await this.execute(buildCommand")]
    cli_flags = re.findall(r"[\"`](--[a-z-]+=?)", command)
    assert set(fields) - {"directory"} == set(oci.SOURCE_FIELDS), "cdk-assets reads other source fields now"
    full = {field: _example(field) for field in oci.SOURCE_FIELDS}
    ours = [a.split("=")[0] + ("=" if a.startswith("--output=") else "") for a in
            oci.ImageAsset("id", full, Path(".")).build_args("tag") if a.startswith("--")]  # fmt: skip
    assert list(dict.fromkeys(ours)) == cli_flags


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
