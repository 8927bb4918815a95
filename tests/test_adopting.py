"""What docs/adopting.md promises about retrofits: image functions, a CDK app inside the workspace, an
app's own Function subclass, and the handler strings of packages with a build system."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Aspects, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Annotations, Match, Template
from constructs import Construct
from helpers import add_function, call_handler, function_codes, staged_asset, synth_app, synth_error

from cdk_uv_aspect import UvBundlingAspect, UvCode, mark_package, uv_image_code
from cdk_uv_aspect._assembly import functions
from cdk_uv_aspect._uv import Uv

pytestmark = pytest.mark.slow


def lock(workspace: Path) -> None:
    done = subprocess.run([Uv.locate(None).path, "lock", "--quiet"], cwd=workspace, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def add_member(workspace: Path, folder: str, pyproject: str, files: dict[str, str]) -> None:
    """A new workspace member at ``folder`` (listed in the root's members), with its files; then locked."""
    (workspace / folder).mkdir(parents=True)
    (workspace / folder / "pyproject.toml").write_text(pyproject)
    for name, text in files.items():
        (workspace / folder / name).parent.mkdir(parents=True, exist_ok=True)
        (workspace / folder / name).write_text(text)
    root = workspace / "pyproject.toml"
    root.write_text(root.read_text().replace('members = ["packages/*"]', f'members = ["packages/*", "{folder}"]'))
    lock(workspace)


def image_sources(out: Path, stack: str = "Stack") -> list[dict[str, Any]]:
    manifest = json.loads((out / f"{stack}.assets.json").read_text())
    return [entry["source"] for entry in manifest.get("dockerImages", {}).values()]


# --- image functions ----------------------------------------------------------------------------


def test_an_adopted_dockerfile_gets_the_markers_python_and_your_build_arguments(
    workspace: Path, cache_dir: Path, tmp_path: Path
):
    """The Dockerfile's path is relative to the workspace root; the build is for the marker's Python, which
    reaches the Dockerfile as PYTHON_VERSION; the Dockerfile's other arguments come from build_args."""
    dockerfile = (
        "ARG PYTHON_VERSION\nFROM public.ecr.aws/lambda/python:${PYTHON_VERSION}\n"
        "ARG GREETING\nENV GREETING=${GREETING}\nCOPY . ${LAMBDA_TASK_ROOT}/\n"
    )
    (workspace / "lambdas" / "api").mkdir(parents=True)
    (workspace / "lambdas" / "api" / "Dockerfile").write_text(dockerfile)
    out = tmp_path / "out"

    def populate(stack: Stack) -> None:
        fn = lambda_.DockerImageFunction(stack, "Api", code=uv_image_code(stack, "api.handler.main"))
        mark_package(fn, "api", python="3.11", dockerfile="lambdas/api/Dockerfile", build_args={"GREETING": "hi"})

    assert Path.cwd() != workspace  # the path is not read from the current directory
    synth_app(workspace, populate, outdir=out)
    (source,) = image_sources(out)
    assert source["dockerBuildArgs"] == {"PYTHON_VERSION": "3.11", "GREETING": "hi"}
    context = out / source["directory"]
    assert (context / "Dockerfile").read_text() == dockerfile
    assert list(context.glob("api/__pycache__/handler.cpython-311.pyc"))
    (fn,) = functions(out)
    assert fn.build is not None and fn.build.target == "python3.11-x86_64"


def test_the_python_comes_from_the_marker_never_from_the_dockerfile(workspace: Path, cache_dir: Path, tmp_path: Path):
    """Left out of the marker, the Python is image_python's (3.12) whatever the FROM line says: a Lambda 3.11
    base image is refused, any other base image is not judged and gets a 3.12 build."""
    (workspace / "docker").mkdir()
    out = tmp_path / "out"

    def populate(stack: Stack) -> None:
        fn = lambda_.DockerImageFunction(stack, "Api", code=uv_image_code(stack, "api.handler.main"))
        mark_package(fn, "api", dockerfile="docker/api.Dockerfile")

    (workspace / "docker" / "api.Dockerfile").write_text("FROM public.ecr.aws/lambda/python:3.11\nCOPY . /var/task/\n")
    message = synth_error(workspace, populate)
    assert "a Lambda Python 3.11 base image" in message and "(from UvOptions(image_python))" in message, message
    assert 'mark_package(fn, "api", python="3.11")' in message

    (workspace / "docker" / "api.Dockerfile").write_text("FROM python:3.11-slim\nCOPY . /var/task/\n")
    synth_app(workspace, populate, outdir=out)
    (fn,) = functions(out)
    assert fn.build is not None and fn.build.target == "python3.12-x86_64"


def test_uv_image_code_is_for_docker_image_functions(workspace: Path, cache_dir: Path, tmp_path: Path):
    """A plain Function can't take uv_image_code(); DockerImageFunction with the same id is the same resource
    as a Function with Runtime.FROM_IMAGE, which is built too (its old image with a warning naming the fix)."""
    wrong_type = re.escape("must be aws_cdk.aws_lambda.Code; got aws_cdk.aws_lambda.DockerImageCode")
    with pytest.raises(TypeError, match=wrong_type):
        stack = Stack()
        lambda_.Function(
            stack,
            "Api",
            runtime=lambda_.Runtime.FROM_IMAGE,
            handler=lambda_.Handler.FROM_IMAGE,
            code=uv_image_code(stack, "api.handler.main"),  # type: ignore[arg-type]
        )

    old = tmp_path / "old"
    old.mkdir()
    (old / "Dockerfile").write_text("FROM scratch\n")

    def before(stack: Stack) -> None:
        code = lambda_.Code.from_asset_image(str(old), cmd=["api.handler.main"])
        fn = lambda_.Function(
            stack, "Api", runtime=lambda_.Runtime.FROM_IMAGE, handler=lambda_.Handler.FROM_IMAGE, code=code
        )
        mark_package(fn, "api")

    def after(stack: Stack) -> None:
        fn = lambda_.DockerImageFunction(stack, "Api", code=uv_image_code(stack, "api.handler.main"))
        mark_package(fn, "api")

    _, plain = synth_app(workspace, before, outdir=tmp_path / "before")
    _, image = synth_app(workspace, after, outdir=tmp_path / "after")
    lambdas = [Template.from_stack(s).find_resources("AWS::Lambda::Function") for s in (plain, image)]
    assert lambdas[0] == lambdas[1]  # the same logical id and properties: switching replaces nothing
    Annotations.from_stack(plain).has_warning(
        "/Stack/Api",
        Match.string_like_regexp(re.escape('as a DockerImageFunction with code=uv_image_code(self, "<handler>")')),
    )


# --- a CDK app that is itself a member of the workspace -----------------------------------------


def test_a_cdk_app_that_is_a_workspace_member_stays_out_of_every_asset(
    workspace: Path, cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The app as member `infra` (its own dependencies, no marker), synthesized from its folder: the workspace
    is found above it, and no function's asset holds the app's modules or its dependencies."""
    add_member(
        workspace,
        "infra",
        '[project]\nname = "infra"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
        'dependencies = ["iniconfig", "common"]\n\n[tool.uv.sources]\ncommon = { workspace = true }\n',
        {"app.py": "import infra_stacks\n", "infra_stacks.py": "import iniconfig\n"},
    )
    assert "infra" in (workspace / "uv.lock").read_text()
    monkeypatch.chdir(workspace / "infra")
    out = tmp_path / "out"

    def populate(stack: Stack) -> None:
        add_function(stack, "Api", "api")
        add_function(stack, "App", "app", handler="main.handler")

    app = App(outdir=str(out))
    stack = Stack(app, "Stack")
    populate(stack)
    Aspects.of(app).add(UvBundlingAspect())  # no workspace given: the nearest uv.lock above the current directory
    app.synth()
    codes = function_codes(stack)
    assert len(codes) == 2
    for code in codes.values():
        asset = staged_asset(out, code)
        names = {p.name for p in asset.rglob("*")}
        assert not names & {"infra_stacks.py", "app.py", "iniconfig", "infra"}, sorted(names)
    api = next(code for lid, code in codes.items() if lid.startswith("Api"))
    answer = call_handler(staged_asset(out, api), "api.handler.main", "3.12")
    assert answer.ok, answer.result


# --- the app's own Function subclass ------------------------------------------------------------


class ShopFunction(lambda_.Function):
    """An app's own construct that supplies runtime defaults, adopted: UvCode() and the marker inside."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        package: str,
        handler: str,
        runtime: lambda_.Runtime = lambda_.Runtime.PYTHON_3_11,
        architecture: lambda_.Architecture = lambda_.Architecture.ARM_64,
    ) -> None:
        super().__init__(scope, id, runtime=runtime, architecture=architecture, handler=handler, code=UvCode())
        mark_package(self, package)


class Orders(Construct):
    """A wrapper that is not a Function: it marks the Function it creates."""

    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        self.function = lambda_.Function(
            self, "Handler", runtime=lambda_.Runtime.PYTHON_3_12, handler="api.handler.main", code=UvCode()
        )
        mark_package(self.function, "api")


def test_a_function_subclass_with_runtime_defaults_builds_for_what_it_passes(
    workspace: Path, cache_dir: Path, tmp_path: Path
):
    """The subclass's defaults decide the target, an override gets its own build, a wrapper's Function is built."""
    out = tmp_path / "out"

    def populate(stack: Stack) -> None:
        ShopFunction(stack, "Default", package="api", handler="api.handler.main")
        ShopFunction(
            stack,
            "Override",
            package="api",
            handler="api.handler.main",
            runtime=lambda_.Runtime.PYTHON_3_12,
            architecture=lambda_.Architecture.X86_64,
        )
        Orders(stack, "Orders")

    synth_app(workspace, populate, outdir=out)
    built = {fn.path: fn.build.target for fn in functions(out) if fn.build}
    assert built == {
        "Stack/Default": "python3.11-arm64",
        "Stack/Override": "python3.12-x86_64",
        "Stack/Orders/Handler": "python3.12-x86_64",
    }


# --- handler strings ----------------------------------------------------------------------------


def test_a_package_with_a_build_system_puts_its_import_name_in_the_handler(
    workspace: Path, cache_dir: Path, tmp_path: Path
):
    """index.py moved into package order-service (a build system, src layout) is order_service.index: that is
    the handler; an application package's (no build system) modules stay at the asset root."""
    add_member(
        workspace,
        "lambdas/order-service",
        '[project]\nname = "order-service"\nversion = "0.1.0"\nrequires-python = ">=3.11"\ndependencies = []\n\n'
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n',
        {
            "src/order_service/__init__.py": "",
            "src/order_service/index.py": "def handler(event, context):\n    return {'module': __name__}\n",
        },
    )
    out = tmp_path / "out"

    def populate(stack: Stack) -> None:
        add_function(stack, "Orders", "order-service", handler="order_service.index.handler")
        add_function(stack, "App", "app", handler="main.handler")

    _, stack = synth_app(workspace, populate, outdir=out)
    assets = {lid[: -len("ABCDEF12")]: staged_asset(out, code) for lid, code in function_codes(stack).items()}
    orders, app = assets["Orders"], assets["App"]
    assert (orders / "order_service" / "index.py").is_file() and not (orders / "index.py").exists()
    answer = call_handler(orders, "order_service.index.handler", "3.12")
    assert answer.ok and answer.result == {"module": "order_service.index"}, answer.result
    assert not call_handler(orders, "index.handler", "3.12").ok  # the handler string it had before
    assert (app / "main.py").is_file()
    assert call_handler(app, "main.handler", "3.12", {"name": "x"}).ok
