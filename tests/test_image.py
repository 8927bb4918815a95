"""Image functions: one image asset per package and target, made from the uv-built folder plus a Dockerfile."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from aws_cdk import App, Aspects, Stack
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Annotations, Match, Template
from helpers import add_function, assert_complete_error, call_handler, synth_app, synth_error

from cdk_uv_aspect import UvBundlingAspect, mark_package, uv_image_code
from cdk_uv_aspect._assembly import functions
from cdk_uv_aspect._record import ImageRecord

pytestmark = pytest.mark.slow


def image_function(
    stack: Stack,
    name: str,
    package: str = "api",
    *,
    handler: str = "api.handler.main",
    architecture: lambda_.Architecture = lambda_.Architecture.X86_64,
    code: lambda_.DockerImageCode | None = None,
    **marker: object,
) -> lambda_.DockerImageFunction:
    fn = lambda_.DockerImageFunction(stack, name, architecture=architecture, code=code or uv_image_code(stack, handler))
    mark_package(fn, package, **marker)  # type: ignore[arg-type]
    return fn


def images(out: Path) -> dict[str, dict]:
    """The image assets of the synthesized stack "Stack": hash -> source."""
    manifest = json.loads((out / "Stack.assets.json").read_text())
    return {h: entry["source"] for h, entry in manifest.get("dockerImages", {}).items()}


def the_function(stack: Stack, name: str) -> dict:
    resources = Template.from_stack(stack).find_resources("AWS::Lambda::Function")
    (props,) = [r["Properties"] for lid, r in resources.items() if lid.startswith(name)]
    return props


def test_image_function_gets_one_image_of_the_built_folder_and_a_dockerfile(
    workspace: Path, cache_dir: Path, tmp_path: Path
):
    """One image asset, no placeholder; its context holds the Dockerfile and the handler that answers."""
    out = tmp_path / "out"
    _, stack = synth_app(workspace, lambda s: image_function(s, "Img"), outdir=out)
    ((image_hash, source),) = images(out).items()
    assert source["platform"] == "linux/amd64"
    context = out / source["directory"]
    dockerfile = (context / "Dockerfile").read_text()
    assert "FROM public.ecr.aws/lambda/python:3.12\n" in dockerfile
    assert "COPY . ${LAMBDA_TASK_ROOT}/" in dockerfile
    assert (context / ".dockerignore").read_text().split() == ["Dockerfile", ".dockerignore"]
    assert (context / "api" / "handler.py").is_file()
    answer = call_handler(context, "api.handler.main", "3.12", {"name": "img"})
    assert answer.ok, answer.result
    assert answer.result["message"] == "hello img"
    props = the_function(stack, "Img")
    assert props["PackageType"] == "Image"
    assert props["ImageConfig"] == {"Command": ["api.handler.main"]}
    assert props["Code"]["ImageUri"]["Fn::Sub"].endswith(f":{image_hash}")
    files = json.loads((out / "Stack.assets.json").read_text()).get("files", {})
    assert all(f["source"]["path"].endswith(".template.json") for f in files.values())  # no zip, no placeholder


def test_an_image_context_that_is_a_link_is_not_used(workspace: Path, cache_dir: Path, tmp_path: Path):
    """The build context kept in the cache's images/ replaced by a link to a copy elsewhere, with another
    Dockerfile: the next synth makes its own context again; the copy is left as it was."""
    synth_app(workspace, lambda s: image_function(s, "Img"), outdir=tmp_path / "one")
    ((context,),) = [list((cache_dir / "images").iterdir())]
    copy = Path(shutil.copytree(context, tmp_path / "elsewhere" / context.name, symlinks=True))
    (copy / "Dockerfile").write_text("FROM evil.example/python:3.12\n")
    shutil.rmtree(context)
    context.symlink_to(copy, target_is_directory=True)

    out = tmp_path / "two"
    synth_app(workspace, lambda s: image_function(s, "Img"), outdir=out)

    ((_, source),) = images(out).items()
    assert "FROM public.ecr.aws/lambda/python:3.12\n" in (out / source["directory"] / "Dockerfile").read_text()
    assert context.is_dir() and not context.is_symlink()
    assert (copy / "Dockerfile").read_text() == "FROM evil.example/python:3.12\n"


def test_functions_of_one_package_and_target_share_one_image_and_one_build(
    workspace: Path, cache_dir: Path, tmp_path: Path
):
    """Two handlers of one package: one image (the handler is the CMD); the zip function shares the build."""
    out = tmp_path / "out"

    def populate(stack: Stack) -> None:
        image_function(stack, "One", handler="api.handler.main")
        image_function(stack, "Two", handler="api.handler.cli")
        add_function(stack, "Zip", "api")

    _, stack = synth_app(workspace, populate, outdir=out)
    assert len(images(out)) == 1
    assert the_function(stack, "Two")["ImageConfig"] == {"Command": ["api.handler.cli"]}
    assert len(list((cache_dir / "builds").iterdir())) == 1


def test_image_hash_is_the_same_on_every_synth_and_checkout_path(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Same code, other checkout folder and other build cache: the same image hash, nothing rebuilt."""
    other = tmp_path / "elsewhere" / "checkout"
    shutil.copytree(workspace, other)
    hashes = []
    for n, ws in enumerate([workspace, workspace, other]):
        monkeypatch.setenv("CDK_UV_CACHE_DIR", str(tmp_path / f"cache{n % 2 if n < 2 else 2}"))
        out = tmp_path / f"out{n}"
        synth_app(ws, lambda s: image_function(s, "Img"), outdir=out)
        hashes.append(set(images(out)))
    assert hashes[0] == hashes[1] == hashes[2]
    assert len(hashes[0]) == 1


def test_marker_data_sets_python_and_the_platform_follows_the_architecture(
    workspace: Path, cache_dir: Path, tmp_path: Path
):
    """python="3.13" in the marker, arm64 function: the 3.13 base image, built for linux/arm64."""
    out = tmp_path / "out"
    synth_app(
        workspace,
        lambda s: image_function(s, "Img", architecture=lambda_.Architecture.ARM_64, python="3.13"),
        outdir=out,
    )
    ((_, source),) = images(out).items()
    assert source["platform"] == "linux/arm64"
    assert "FROM public.ecr.aws/lambda/python:3.13\n" in (out / source["directory"] / "Dockerfile").read_text()
    (fn,) = functions(out)
    assert (fn.package_type, fn.architecture, fn.package) == ("Image", "arm64", "api")
    assert fn.build.target == "python3.13-arm64"
    assert fn.build.image == ImageRecord("3.13", "default", "public.ecr.aws/lambda/python:3.13")


def test_user_dockerfile_and_build_args_go_into_the_image(workspace: Path, cache_dir: Path, tmp_path: Path):
    """A Dockerfile from the workspace replaces the default one; build args reach the manifest."""
    (workspace / "docker").mkdir()
    user = 'ARG BASE\nFROM ${BASE}\nCOPY . /var/task/\nCMD ["api.handler.main"]\n'
    (workspace / "docker" / "api.Dockerfile").write_text(user)
    out = tmp_path / "out"
    synth_app(
        workspace,
        lambda s: image_function(
            s, "Img", dockerfile="docker/api.Dockerfile", build_args={"BASE": "example.org/python:3.12"}
        ),
        outdir=out,
    )
    ((_, source),) = images(out).items()
    assert (out / source["directory"] / "Dockerfile").read_text() == user
    assert source["dockerBuildArgs"] == {"BASE": "example.org/python:3.12", "PYTHON_VERSION": "3.12"}


def test_retrofitted_image_asset_is_replaced_with_a_warning(workspace: Path, cache_dir: Path, tmp_path: Path):
    """DockerImageCode.from_image_asset as the placeholder: the function uses the uv image, with a warning."""
    old = tmp_path / "old"
    old.mkdir()
    (old / "Dockerfile").write_text("FROM scratch\n")
    out = tmp_path / "out"
    holder: list[Stack] = []

    def populate(stack: Stack) -> None:
        holder.append(stack)
        code = lambda_.DockerImageCode.from_image_asset(str(old), cmd=["api.handler.main"])
        image_function(stack, "Img", code=code)

    _, stack = synth_app(workspace, populate, outdir=out)
    Annotations.from_stack(stack).has_warning(
        "/Stack/Img", Match.string_like_regexp("still builds and pushes that image.*uv_image_code")
    )
    uv_image = next(h for h, s in images(out).items() if (out / s["directory"] / "api").is_dir())
    assert the_function(stack, "Img")["Code"]["ImageUri"]["Fn::Sub"].endswith(f":{uv_image}")


def test_uv_image_code_without_the_aspect_fails_synthesis(cache_dir: Path):
    """The image placeholder that no aspect replaced stops synthesis."""
    app = App()
    stack = Stack(app, "Stack")
    image_function(stack, "Img")
    with pytest.raises(RuntimeError, match=r"Stack/Img uses uv_image_code\(\) but no UvBundlingAspect built it"):
        app.synth()


def test_uv_image_code_creates_no_asset(cache_dir: Path):
    """The image placeholder registers nothing with the synthesizer."""
    app = App(context={"aws:cdk:bundling-stacks": []})
    stack = Stack(app, "Stack")
    image_function(stack, "Img")
    image_function(stack, "Img2")
    assert app.synth().get_stack_by_name("Stack").assets == []


# --- bad input ----------------------------------------------------------------------------------------


def test_missing_user_dockerfile_is_a_clear_error(workspace: Path, cache_dir: Path):
    message = synth_error(workspace, lambda s: image_function(s, "Img", dockerfile="docker/nope.Dockerfile"))
    for part in ("Stack/Img", "docker/nope.Dockerfile", "can't be read", "relative to the workspace root"):
        assert part in message, message
    assert not (cache_dir / "builds").exists()


def test_dockerfile_outside_the_workspace_is_refused(workspace: Path, cache_dir: Path, tmp_path: Path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    message = synth_error(workspace, lambda s: image_function(s, "Img", dockerfile="../Dockerfile"))
    assert "outside the workspace" in message and "Stack/Img" in message, message


def test_python_version_the_package_does_not_support_is_a_clear_error(workspace: Path, cache_dir: Path):
    message = synth_error(workspace, lambda s: image_function(s, "Img", python="3.10"))
    for part in ("Stack/Img", "package api requires Python >=3.11", "built for Python 3.10", "image_python"):
        assert part in message, message


def test_python_version_without_a_lambda_base_image_is_refused(workspace: Path, cache_dir: Path):
    message = synth_error(workspace, lambda s: image_function(s, "Img"), image_python="3.99")
    assert "must be one of Lambda's (" in message and "3.13, 3.14" in message and "got '3.99'" in message, message
    message = synth_error(workspace, lambda s: image_function(s, "Img"), image_python="3.6")
    assert "Lambda retired python3.6" in message and "Stack/Img" in message, message


def test_image_function_without_a_handler_says_so(workspace: Path, cache_dir: Path):
    """No CMD anywhere: the function could never start, so synthesis stops and says where to put it."""

    def populate(stack: Stack) -> None:
        repo = ecr.Repository.from_repository_name(stack, "Repo", "some-repo")
        image_function(stack, "Img", code=lambda_.DockerImageCode.from_ecr(repo))

    message = synth_error(workspace, populate)
    assert "has no handler" in message and 'uv_image_code(self, "api.handler.main")' in message, message


def test_unknown_marker_keys_are_refused(workspace: Path, cache_dir: Path):
    def populate(stack: Stack) -> None:
        fn = lambda_.DockerImageFunction(stack, "Img", code=uv_image_code(stack, "api.handler.main"))
        fn.node.add_metadata("uv", {"package": "api", "dockerfil": "x"})

    message = synth_error(workspace, populate)
    assert "unknown keys ['dockerfil']" in message, message


def test_aspect_added_to_the_app_reaches_image_functions(workspace: Path, cache_dir: Path):
    """The plain contract: a raw metadata marker on a DockerImageFunction is enough."""
    app = App()
    stack = Stack(app, "Stack")
    fn = lambda_.DockerImageFunction(stack, "Img", code=uv_image_code(stack, "api.handler.main"))
    fn.node.add_metadata("uv", "api")
    Aspects.of(app).add(UvBundlingAspect(workspace=workspace))
    app.synth()
    assert "Fn::Sub" in the_function(stack, "Img")["Code"]["ImageUri"]


@pytest.mark.parametrize("command", ["invoke", "profile"])
def test_cdk_uv_invoke_without_a_container_engine_says_how_to_get_one(
    workspace: Path,
    cache_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: str,
):
    """No docker, no podman: `cdk-uv invoke` (or `profile`) of an image function exits 3, naming what it tried
    and the ways out."""
    from cdk_uv_aspect._cli import main

    out = tmp_path / "out"
    synth_app(workspace, lambda s: image_function(s, "Img"), outdir=out)
    monkeypatch.delenv("CDK_DOCKER", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "no-engines-here"))
    assert main([command, str(out), "Img"]) == 3
    message = capsys.readouterr().err
    for part in (
        "Stack/Img is an image function, and running it needs a container engine",
        "`docker` is not installed",
        "`podman` is not installed",
        "start Docker, or install podman (Debian/Ubuntu: apt-get install podman buildah",
        "set $CDK_DOCKER",
    ):
        assert part in message, message


def test_zip_function_marker_with_image_keys_is_refused(workspace: Path, cache_dir: Path):
    """A zip function's Python is its runtime: python= in its marker is a mistake, not a second source."""

    def populate(stack: Stack) -> None:
        fn = add_function(stack, "Api", None)
        mark_package(fn, "api", python="3.13")

    message = synth_error(workspace, populate)
    assert "['python'] apply to image functions only" in message and "python3.12" in message, message


def test_image_options_have_documented_defaults_and_refuse_bad_versions():
    from pydantic import ValidationError

    from cdk_uv_aspect import UvOptions

    options = UvOptions()
    assert (options.image_python, options.dockerfile, options.docker_build_args, options.docker_fallback) == (
        "3.12",
        None,
        (),
        True,
    )
    assert options.base_image_digests == ()
    assert UvOptions(docker_build_args={"B": "2", "A": "1"}).docker_build_args == (("A", "1"), ("B", "2"))
    with pytest.raises(ValidationError, match="should match pattern"):
        UvOptions(image_python="3")


def test_build_args_that_are_not_a_mapping_of_strings_are_refused(workspace: Path, cache_dir: Path):
    def populate(stack: Stack) -> None:
        fn = lambda_.DockerImageFunction(stack, "Img", code=uv_image_code(stack, "api.handler.main"))
        fn.node.add_metadata("uv", {"package": "api", "build_args": ["BASE=x"]})

    message = synth_error(workspace, populate)
    assert "build_args must map names to strings" in message and "Stack/Img" in message, message


# --- the Dockerfile's base image agrees with the build's Python ----------------------------------------


@pytest.mark.parametrize(
    ("dockerfile", "build_args", "base"),
    [
        ("FROM public.ecr.aws/lambda/python:3.11\nCOPY . /var/task/\n", {}, "public.ecr.aws/lambda/python:3.11"),
        (
            "ARG BASE=public.ecr.aws/lambda/python:3.12\nFROM ${BASE} AS runtime\nFROM runtime\nCOPY . /var/task/\n",
            {"BASE": "public.ecr.aws/lambda/python:3.11-x86_64"},
            "public.ecr.aws/lambda/python:3.11-x86_64",
        ),
        (
            "ARG PYTHON_VERSION\nFROM public.ecr.aws/lambda/python:${PYTHON_VERSION}\nCOPY . /var/task/\n",
            {"PYTHON_VERSION": "3.11"},
            "public.ecr.aws/lambda/python:3.11",
        ),
    ],
    ids=["literal", "build-arg-and-stage-alias", "python-version-overridden"],
)
def test_dockerfile_from_another_python_is_refused(
    workspace: Path, cache_dir: Path, dockerfile: str, build_args: dict, base: str
):
    """Built for 3.12, FROM a Lambda 3.11 image: refused at synth (test_image_real.py shows the import failing)."""
    (workspace / "docker").mkdir()
    (workspace / "docker" / "api.Dockerfile").write_text(dockerfile + 'CMD ["api.handler.main"]\n')

    def populate(stack: Stack) -> None:
        image_function(stack, "Img", python="3.12", dockerfile="docker/api.Dockerfile", build_args=build_args)

    assert_complete_error(
        synth_error(workspace, populate),
        construct="Stack/Img",
        package="api",
        target="python3.12 x86_64",
        fix='make them agree: build for 3.11 (mark_package(fn, "api", python="3.11"))',
        also=[
            f"docker/api.Dockerfile builds FROM {base}, a Lambda Python 3.11 base image",
            "built for Python 3.12 (from the marker's python)",
            "FROM public.ecr.aws/lambda/python:${PYTHON_VERSION}",
        ],
    )
    assert not (cache_dir / "builds").exists()  # refused before anything was built


def test_the_targets_python_reaches_a_user_dockerfile_as_a_build_argument(
    workspace: Path, cache_dir: Path, tmp_path: Path
):
    """FROM ...:${PYTHON_VERSION} with no build_args: the build argument is the marker's Python, and it agrees."""
    (workspace / "docker").mkdir()
    dockerfile = 'ARG PYTHON_VERSION\nFROM public.ecr.aws/lambda/python:${PYTHON_VERSION}\nCMD ["api.handler.main"]\n'
    (workspace / "docker" / "api.Dockerfile").write_text(dockerfile)
    out = tmp_path / "out"
    synth_app(
        workspace, lambda s: image_function(s, "Img", python="3.13", dockerfile="docker/api.Dockerfile"), outdir=out
    )
    ((_, source),) = images(out).items()
    assert source["dockerBuildArgs"] == {"PYTHON_VERSION": "3.13"}
    (fn,) = functions(out)
    assert fn.build.image.base == "public.ecr.aws/lambda/python:3.13"


# --- the base image pinned by digest -----------------------------------------------------------------

DIGEST = "sha256:" + "5" * 64
OTHER = "sha256:" + "6" * 64


def test_base_image_pinned_by_digest_is_in_the_dockerfile_the_metadata_and_the_report(
    workspace: Path, cache_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """UvOptions pins 3.12 by digest: FROM <tag>@<digest>, recorded in uv:build; 3.13 stays on its tag."""
    from cdk_uv_aspect._cli import main

    out = tmp_path / "out"

    def populate(stack: Stack) -> None:
        image_function(stack, "Pinned", python="3.12")
        image_function(stack, "Tagged", python="3.13")

    synth_app(workspace, populate, outdir=out, base_image_digests={"3.12": DIGEST})
    dockerfiles = {(out / s["directory"] / "Dockerfile").read_text() for s in images(out).values()}
    assert any(f"FROM public.ecr.aws/lambda/python:3.12@{DIGEST}\n" in d for d in dockerfiles)
    assert any("FROM public.ecr.aws/lambda/python:3.13\n" in d for d in dockerfiles)
    bases = {fn.path: fn.build.image.base for fn in functions(out)}
    assert bases == {
        "Stack/Pinned": f"public.ecr.aws/lambda/python:3.12@{DIGEST}",
        "Stack/Tagged": "public.ecr.aws/lambda/python:3.13",
    }
    assert main(["report", str(out)]) == 0
    table = capsys.readouterr().out
    assert "base image" in table.splitlines()[0]
    assert f"lambda/python:3.12@{DIGEST[:19]}" in table and "lambda/python:3.13" in table


def test_a_new_pin_changes_the_image_and_the_same_pin_does_not(workspace: Path, cache_dir: Path, tmp_path: Path):
    """The marker's base_digest: another digest is another image (a redeploy); the same digest, the same image."""
    hashes = []
    for n, digest in enumerate([DIGEST, DIGEST, OTHER]):
        out = tmp_path / f"out{n}"
        synth_app(workspace, lambda s, d=digest: image_function(s, "Img", base_digest=d), outdir=out)
        hashes.append(set(images(out)))
    assert hashes[0] == hashes[1] != hashes[2]


def test_base_digest_with_a_dockerfile_of_your_own_is_refused(workspace: Path, cache_dir: Path):
    """A pin in the marker can't reach a Dockerfile the user wrote: it names its base image itself."""
    (workspace / "docker").mkdir()
    (workspace / "docker" / "api.Dockerfile").write_text("FROM public.ecr.aws/lambda/python:3.12\n")

    def populate(stack: Stack) -> None:
        image_function(stack, "Img", dockerfile="docker/api.Dockerfile", base_digest=DIGEST)

    assert_complete_error(
        synth_error(workspace, populate),
        construct="Stack/Img",
        package="api",
        target="python3.12 x86_64",
        fix="pin the base image in the FROM line of docker/api.Dockerfile",
        also=["the marker's base_digest pins the default Dockerfile's base image"],
    )


def test_a_base_digest_that_is_not_a_digest_is_refused_with_the_function(workspace: Path, cache_dir: Path):
    def populate(stack: Stack) -> None:
        fn = lambda_.DockerImageFunction(stack, "Img", code=uv_image_code(stack, "api.handler.main"))
        fn.node.add_metadata("uv", {"package": "api", "base_digest": "latest"})

    message = synth_error(workspace, populate)
    assert "Stack/Img" in message and "base_digest must be an image digest, sha256:<64 hex digits>" in message
