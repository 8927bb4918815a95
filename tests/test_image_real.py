"""Image functions for real: built from the cloud assembly as the CDK CLI builds them, run inside the image.

Needs an OCI engine (``$CDK_DOCKER``, ``docker`` or ``podman``, as the library chooses: see tests/oci.py);
without one every test here is skipped with the reason. Base images are AWS's with Docker, local stand-ins
with podman. Builds and runs go through the library's engine (``cdk_uv_aspect._engine``), directly or
through ``cdk-uv invoke``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import oci
import pytest
from aws_cdk import Stack
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_lambda as lambda_
from helpers import FIXTURES, add_function, python_for, synth_app
from oci import BaseImage, Oci, base_of, folder_entries
from test_samples import ANSWERS, EVENTS, cdk, copy_samples

from cdk_uv_aspect import mark_package, uv_image_code
from cdk_uv_aspect._assembly import AssemblyFunction, functions
from cdk_uv_aspect._cli import main
from cdk_uv_aspect._image import lambda_python

# The fixture app's image functions: (construct id, package, handler, python, architecture, marker extras)
FIXTURE_IMAGES = [
    ("Api311", "api", "api.handler.main", "3.11", "x86_64", {}),
    ("Api312", "api", "api.handler.main", "3.12", "x86_64", {}),
    ("Api313", "api", "api.handler.main", "3.13", "x86_64", {}),
    ("ApiArm", "api", "api.handler.main", "3.13", "arm64", {}),
    ("App312", "app", "main.handler", "3.12", "x86_64", {}),
    (
        "Custom",
        "api",
        "api.handler.main",
        "3.12",
        "x86_64",
        {"dockerfile": "docker/api.Dockerfile", "build_args": {"BASE": "public.ecr.aws/lambda/python:3.12"}},
    ),
]
# Zip functions of the same package and target as an image function: their assets must equal /var/task.
PYTHON_3_13 = lambda_.Runtime("python3.13", lambda_.RuntimeFamily.PYTHON)  # Runtime.PYTHON_3_13 from aws-cdk-lib 2.167
FIXTURE_ZIPS = [
    ("ApiZip312", "api", "api.handler.main", lambda_.Runtime.PYTHON_3_12, "x86_64", "Api312"),
    (
        "ApiZipArm",
        "api",
        "api.handler.main",
        lambda_.Runtime("python3.13", lambda_.RuntimeFamily.PYTHON),
        "arm64",
        "ApiArm",
    ),
    ("AppZip312", "app", "main.handler", lambda_.Runtime.PYTHON_3_12, "x86_64", "App312"),
]
# A Dockerfile of the user's that takes its base image's version from the build argument every image build
# gets, and names the handler itself: its function's code has no command (DockerImageCode.from_ecr).
PYTHON_VERSION_DOCKERFILE = """\
ARG PYTHON_VERSION
FROM public.ecr.aws/lambda/python:${PYTHON_VERSION}
COPY . /var/task/
CMD ["api.handler.main"]
"""
USER_DOCKERFILE = 'ARG BASE\nFROM ${BASE}\nCOPY . /var/task/\nCMD ["api.handler.main"]\n'
ANSWER = {"api": {"message": "hello img", "version": "0.1.0"}, "app": {"message": "HELLO IMG!"}}
ARCHITECTURES = {"x86_64": lambda_.Architecture.X86_64, "arm64": lambda_.Architecture.ARM_64}
# The samples' image functions and the zip function built from the same package and target.
SAMPLE_IMAGES = {"UvSample/OrdersImage": ("orders", "3.12", "UvSample/Orders")}


@dataclass(frozen=True)
class Assembly:
    out: Path
    images: dict[str, AssemblyFunction]  # construct path -> image function (built from this assembly)
    zips: dict[str, AssemblyFunction]  # construct path -> zip function
    pinned: str = ""  # the digest the fixture app pinned its base image to


@pytest.fixture(scope="module")
def engine() -> Iterator[Oci]:
    found = oci.find_engine()
    if isinstance(found, str):
        oci.unavailable(found)
    yield found
    found.cleanup()


@pytest.fixture(scope="module")
def base(engine: Oci) -> Callable[[str, str], BaseImage]:
    """The Lambda base image of a Python version and architecture, made (or pulled) once per session."""
    made: dict[tuple[str, str], BaseImage] = {}

    def get(python: str, architecture: str) -> BaseImage:
        if (python, architecture) not in made:
            made[python, architecture] = oci.base_image(engine, python, architecture, python_for(python))
        return made[python, architecture]

    return get


@pytest.fixture(scope="module")
def built(engine: Oci, base: Callable[[str, str], BaseImage]) -> Callable[[AssemblyFunction], str]:
    """Build an image function's asset once per module, its Lambda base image first; its local tag."""
    tags: dict[str, str] = {}

    def build(fn: AssemblyFunction) -> str:
        assert fn.image is not None
        if fn.image.id not in tags:
            python = lambda_python(base_of(fn))
            if python:
                base(python, fn.architecture)
            tags[fn.image.id] = engine.build(fn.image)
        return tags[fn.image.id]

    return build


@pytest.fixture(scope="module")
def fixture_app(
    tmp_path_factory: pytest.TempPathFactory, engine: Oci, base: Callable[[str, str], BaseImage]
) -> Assembly:
    """The fixture workspace's image functions (and zip twins), synthesized once; one pins its base image
    to the digest of the 3.12 base image this engine has, another to a digest no registry has."""
    pinned = oci.digest_of(engine, base("3.12", "x86_64"))
    tmp = tmp_path_factory.mktemp("image-real")
    ws = tmp / "ws"
    shutil.copytree(FIXTURES / "ws", ws)
    (ws / "docker").mkdir()
    (ws / "docker" / "api.Dockerfile").write_text(USER_DOCKERFILE)
    (ws / "docker" / "version.Dockerfile").write_text(PYTHON_VERSION_DOCKERFILE)

    def populate(stack: Stack) -> None:
        for name, package, handler, python, arch, extra in FIXTURE_IMAGES:
            fn = lambda_.DockerImageFunction(
                stack, name, architecture=ARCHITECTURES[arch], code=uv_image_code(stack, handler)
            )
            mark_package(fn, package, python=python, **extra)  # type: ignore[arg-type]
        for name, package, handler, runtime, arch, _ in FIXTURE_ZIPS:
            add_function(stack, name, package, handler=handler, runtime=runtime, architecture=ARCHITECTURES[arch])
        repo = ecr.Repository.from_repository_name(stack, "Repo", "placeholder")
        versioned = lambda_.DockerImageFunction(stack, "Versioned", code=lambda_.DockerImageCode.from_ecr(repo))
        mark_package(versioned, "api", python="3.13", dockerfile="docker/version.Dockerfile")
        for name, digest in (("Pinned", pinned), ("PinnedElsewhere", "sha256:" + "0" * 64)):
            fn = lambda_.DockerImageFunction(stack, name, code=uv_image_code(stack, "api.handler.main"))
            mark_package(fn, "api", python="3.12", base_digest=digest)

    out = tmp / "out"
    synth_app(ws, populate, outdir=out, cache_dir=tmp / "cache")
    return _assembly(out, pinned)


@pytest.fixture(scope="module")
def samples_app(tmp_path_factory: pytest.TempPathFactory) -> Assembly:
    """samples/ synthesized with the real CDK CLI, as `./dev demo` does."""
    tmp = tmp_path_factory.mktemp("image-real-samples")
    samples = copy_samples(tmp / "samples")
    done = cdk(["synth", "--quiet", "--output", str(tmp / "out")], samples, tmp / "cache")
    assert done.returncode == 0, done.stderr
    return _assembly(tmp / "out")


def _assembly(out: Path, pinned: str = "") -> Assembly:
    found = functions(out)
    images = {f.path: f for f in found if f.image is not None}
    return Assembly(out, images, {f.path: f for f in found if f.package_type == "Zip"}, pinned)


# --- the samples, through the real CDK CLI --------------------------------------------------------


@pytest.mark.slow
@pytest.mark.oci
@pytest.mark.parametrize("path", sorted(SAMPLE_IMAGES))
def test_sample_image_function_answers_from_inside_its_image(engine: Oci, samples_app: Assembly, built, path: str):
    """`cdk synth` on samples/, the CDK's image build, then the handler answers from /var/task in the image."""
    assert set(samples_app.images) == set(SAMPLE_IMAGES), "a sample image function is not covered here"
    package, python, _ = SAMPLE_IMAGES[path]
    fn = samples_app.images[path]
    tag = built(fn)
    event = json.loads((EVENTS / f"{package}.json").read_text())
    answer = engine.invoke(tag, fn.command[0], event, architecture=fn.architecture, name=path.rpartition("/")[2])
    assert answer.ok, answer.result
    assert answer.result["body"] == ANSWERS[package]
    assert answer.result["python"].startswith(python + ".")  # the image's Python, not this machine's


@pytest.mark.slow
@pytest.mark.oci
@pytest.mark.parametrize("path", sorted(SAMPLE_IMAGES))
def test_sample_image_holds_exactly_the_zip_asset(engine: Oci, samples_app: Assembly, built, path: str):
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
    engine: Oci,
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
    assert fn.image is not None and fn.image.source["platform"] == oci.PLATFORMS[arch]
    assert base_of(fn) == f"{oci.BASE_IMAGE}:{python}"
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
    engine: Oci,
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
    assert fn.command == (handler,)
    tag = built(fn)
    cannot = base(python, arch).runnable
    if cannot:
        oci.unavailable(f"{name} built only: {cannot}", arch)
    answer = engine.invoke(tag, handler, {"name": "img"}, architecture=arch, name=name)
    assert answer.ok, answer.result
    assert answer.result == ANSWER[package]


@pytest.mark.slow
@pytest.mark.oci
@pytest.mark.parametrize(
    ("zip_name", "image_name"), [(z[0], z[5]) for z in FIXTURE_ZIPS], ids=[z[5] for z in FIXTURE_ZIPS]
)
def test_image_holds_exactly_the_zip_asset_of_its_package_and_target(
    engine: Oci, fixture_app: Assembly, built, zip_name: str, image_name: str
):
    """/var/task in the image is the zip asset of the same package and target, byte for byte (arm64 too)."""
    tag = built(fixture_app.images[f"Stack/{image_name}"])
    _assert_same_tree(engine.files(tag), fixture_app.zips[f"Stack/{zip_name}"].asset_dir)


@pytest.mark.slow
@pytest.mark.oci
def test_package_built_for_311_fails_at_import_in_a_312_image(
    engine: Oci, fixture_app: Assembly, built, base, tmp_path: Path
):
    """The marker's Python and the Dockerfile's FROM disagree: the 3.11 build can't import in the 3.12 image.

    The evidence for refusing it at synth (test_image.py, ``test_dockerfile_from_another_python_is_refused``):
    the same folder answers in its own 3.11 image and fails at import in the 3.12 one (orjson's extension
    module is built for CPython 3.11).
    """
    for python in ("3.11", "3.12"):
        if base(python, "x86_64").runnable:
            oci.unavailable(base(python, "x86_64").runnable, "x86_64")
    fn = fixture_app.images["Stack/Api311"]
    assert fn.image is not None and base_of(fn) == f"{oci.BASE_IMAGE}:3.11"
    assert engine.invoke(built(fn), "api.handler.main", {"name": "img"}).ok
    context = tmp_path / "context"
    shutil.copytree(fn.image.directory, context, symlinks=True)
    dockerfile = context / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("python:3.11", "python:3.12"))
    tag = engine.build_directory(context, "api-311-in-312", platform="linux/amd64")
    answer = engine.invoke(tag, "api.handler.main", {"name": "img"})
    assert not answer.ok
    assert answer.result["errorType"] == "Runtime.ImportModuleError", answer.result
    assert "orjson" in answer.result["errorMessage"], answer.result


def test_where_ci_requires_the_image_tier_an_image_test_that_cannot_run_fails(monkeypatch: pytest.MonkeyPatch):
    """.ci/run sets $CDK_UV_TEST_OCI=required where an engine can be had: no engine, or a base image that does
    not run, then fails the test instead of skipping it; another architecture's image is still a skip."""
    other = next(arch for arch in oci.PLATFORMS if arch != oci.HOST_ARCH)
    monkeypatch.setenv("CDK_UV_TEST_OCI", "required")
    with pytest.raises(pytest.fail.Exception, match=r"the image tier must run here .*: no engine"):
        oci.unavailable("no engine")
    with pytest.raises(pytest.skip.Exception, match="no binfmt handler"):
        oci.unavailable("no binfmt handler", other)
    monkeypatch.delenv("CDK_UV_TEST_OCI")
    with pytest.raises(pytest.skip.Exception, match="no engine"):
        oci.unavailable("no engine")


def _assert_same_tree(image: dict[str, tuple[str, int, bytes]], folder: Path | None) -> None:
    assert folder is not None and folder.is_dir()
    local = folder_entries(folder)
    assert sorted(image) == sorted(local), "different files under /var/task than in the zip asset"
    different = [rel for rel in local if image[rel] != local[rel]]
    assert not different, f"{len(different)} entries differ in content or mode, e.g. {different[:5]}"


# --- cdk-uv invoke: the same, through the command a user runs ------------------------------------


def cdk_uv_invoke(
    engine: Oci, assembly: Assembly, path: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str, str]:
    """`cdk-uv invoke OUT PATH` (a construct path) with $CDK_DOCKER naming this engine and its storage:
    exit code, stdout, stderr."""
    monkeypatch.setenv("CDK_DOCKER", engine.client)
    image = assembly.images[path].image
    assert image is not None
    engine.images[image.local_tag] = image.display  # the tag cdk-uv builds under: removed at the end
    event = assembly.out.parent / "event.json"
    event.write_text(json.dumps({"name": "img"}))
    code = main(["invoke", str(assembly.out), path, "--event", str(event)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.slow
@pytest.mark.oci
def test_cdk_uv_invoke_builds_the_sample_image_and_answers_from_inside_it(
    engine: Oci, samples_app: Assembly, base, capsys, monkeypatch
):
    """`cdk-uv invoke cdk.out OrdersImage`: the image built as `cdk deploy` would, the answer from inside it;
    a second invoke reuses the image, as `cdk deploy` does."""
    if base("3.12", "x86_64").runnable:
        oci.unavailable(base("3.12", "x86_64").runnable, "x86_64")
    event = json.loads((EVENTS / "orders.json").read_text())
    (samples_app.out.parent / "event.json").write_text(json.dumps(event))
    monkeypatch.setenv("CDK_DOCKER", engine.client)
    fn = samples_app.images["UvSample/OrdersImage"]
    assert fn.image is not None
    engine.images[fn.image.local_tag] = fn.image.display
    for attempt in ("built", "reused"):
        code = main(
            ["invoke", str(samples_app.out), "OrdersImage", "--event", str(samples_app.out.parent / "event.json")]
        )
        out, err = capsys.readouterr()
        assert code == 0, err
        answer = json.loads(out)
        assert answer["body"] == ANSWERS["orders"]
        assert answer["python"].startswith("3.12.")  # the image's Python
        assert f"{attempt} {fn.image.local_tag}" in err, err
        assert (
            "UvSample/OrdersImage: answered in" in err
            and f"inside its image, starting a container included ({engine.engine}, x86_64)" in err
        )


@pytest.mark.slow
@pytest.mark.oci
def test_cdk_uv_profile_of_the_sample_image_starts_fresh_containers(
    engine: Oci, samples_app: Assembly, base, capsys, monkeypatch
):
    """`cdk-uv profile cdk.out OrdersImage --json`: each start a fresh container of the image `cdk deploy` would
    build, the init timed inside it, its imports given to the image's distributions, and without bytecode."""
    if base("3.12", "x86_64").runnable:
        oci.unavailable(base("3.12", "x86_64").runnable, "x86_64")
    monkeypatch.setenv("CDK_DOCKER", engine.client)
    fn = samples_app.images["UvSample/OrdersImage"]
    assert fn.image is not None
    engine.images[fn.image.local_tag] = fn.image.display
    code = main(["profile", str(samples_app.out), "OrdersImage", "--runs", "2", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    assert len(data["initRunsMs"]) == 2 and len(data["withoutBytecode"]["initRunsMs"]) == 2
    modules = {i["module"]: i for i in data["imports"]}
    assert modules["orders.handler"]["depth"] == 0 and modules["orders.handler"]["distribution"] == "orders"
    assert modules["orjson"]["distribution"] == "orjson"
    assert "UvSample/OrdersImage: 2 cold start(s), each a fresh container" in err


@pytest.mark.slow
@pytest.mark.oci
def test_a_user_dockerfile_gets_the_targets_python_as_a_build_argument(
    engine: Oci, fixture_app: Assembly, base, capsys, monkeypatch
):
    """FROM ...:${PYTHON_VERSION} builds on the 3.13 base for a 3.13 function; the handler is the image's CMD."""
    fn = fixture_app.images["Stack/Versioned"]
    assert fn.image is not None and fn.image.source["dockerBuildArgs"] == {"PYTHON_VERSION": "3.13"}
    assert base_of(fn) == f"{oci.BASE_IMAGE}:3.13"
    assert fn.command == ()  # DockerImageCode.from_ecr without cmd: the Dockerfile's CMD names the handler
    if base("3.13", "x86_64").runnable:
        oci.unavailable(base("3.13", "x86_64").runnable, "x86_64")
    code, out, err = cdk_uv_invoke(engine, fixture_app, "Stack/Versioned", capsys, monkeypatch)
    assert code == 0, err
    assert json.loads(out) == ANSWER["api"]  # orjson built for CPython 3.13 imports: the image's Python is 3.13
    assert "calling api.handler.main" in err


@pytest.mark.slow
@pytest.mark.oci
def test_a_base_image_pinned_by_digest_builds_from_that_image_only(
    engine: Oci, fixture_app: Assembly, built, base, capsys, monkeypatch
):
    """The digest of the base image the engine has: built and answers; a digest no registry has: no image."""
    pinned = fixture_app.images["Stack/Pinned"]
    assert base_of(pinned) == f"{oci.BASE_IMAGE}:3.12@{fixture_app.pinned}"
    if base("3.12", "x86_64").runnable:
        oci.unavailable(base("3.12", "x86_64").runnable, "x86_64")
    answer = engine.invoke(built(pinned), "api.handler.main", {"name": "img"}, name="Pinned")
    assert answer.ok, answer.result
    assert answer.result == ANSWER["api"]
    code, out, err = cdk_uv_invoke(engine, fixture_app, "Stack/PinnedElsewhere", capsys, monkeypatch)
    assert (code, out) == (1, "")
    assert "build` of the image asset PinnedElsewhere/UvAsset failed" in err and f"sha256:{'0' * 64}" in err, err


@pytest.mark.slow
@pytest.mark.oci
def test_cdk_uv_invoke_of_an_arm64_image_on_another_machine_says_why_it_cant(
    engine: Oci, fixture_app: Assembly, capsys, monkeypatch
):
    """An arm64 image needs arm64 or emulation: without a binfmt handler, exit 3 and how to get one."""
    cannot = oci.can_run("arm64")
    if not cannot:
        pytest.skip("this machine runs arm64 images")
    code, out, err = cdk_uv_invoke(engine, fixture_app, "Stack/ApiArm", capsys, monkeypatch)
    assert (code, out) == (3, "")
    assert "Stack/ApiArm can't run here: its image is arm64" in err and "qemu-user-static" in err, err
