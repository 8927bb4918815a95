"""What the tests share besides fixtures (those are in conftest.py): building a package, synthesizing an
app, reading what was synthesized, calling a built handler, and the assertion every error test makes.

Import from here (``from helpers import build_of, synth_app``), never from ``conftest``.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("CDK_DISABLE_VERSION_CHECK", "1")

from aws_cdk import App, Aspects, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Template

from cdk_uv_aspect import UvBundlingAspect, UvCode, mark_package
from cdk_uv_aspect._build import Built, build
from cdk_uv_aspect._interpreters import find_python
from cdk_uv_aspect._invoke import Invocation, invoke
from cdk_uv_aspect._options import UvOptions
from cdk_uv_aspect._prune import _IN_PROGRESS
from cdk_uv_aspect._request import BuildRequest
from cdk_uv_aspect._runner import Runner
from cdk_uv_aspect._start import LambdaFunction
from cdk_uv_aspect._target import Target
from cdk_uv_aspect._uv import Uv
from cdk_uv_aspect._workspace import Workspace

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).parent.parent
CDK_VERSION = Version(importlib.metadata.version("aws-cdk-lib"))


def needs_cdk(version: str, what: str) -> pytest.MarkDecorator:
    """Skip a test on aws-cdk-lib releases older than ``version``, which lack ``what``.

    `./dev test` runs the synth tests a second time on the oldest release the library supports.
    """
    return pytest.mark.skipif(
        Version(version) > CDK_VERSION, reason=f"needs aws-cdk-lib {version} or newer ({what}); this is {CDK_VERSION}"
    )


def once_per_run(tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], Any]) -> Any:
    """``make(folder)`` once per test run, also when `./dev test` runs modules side by side in several
    processes (pytest-xdist): the first to ask makes it, under a lock, the others wait and get what it made.
    What ``make`` returns is kept as JSON."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the run's folder, above each worker's own
    folder, made = base / name, base / f"{name}.json"
    with open(base / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not made.exists():
            shutil.rmtree(folder, ignore_errors=True)  # what an attempt that failed left
            folder.mkdir()
            made.write_text(json.dumps(make(folder)))
        return json.loads(made.read_text())


# --- building a package ---------------------------------------------------------------------------


def build_of(
    workspace: Path,
    package: str = "api",
    runner: Runner | None = None,
    *,
    python: str = "3.12",
    arch: str = "x86_64",
    **options: Any,
) -> Built:
    """``package`` of ``workspace`` built for ``python`` on ``arch`` as the aspect builds it (its options
    and their extras and groups checked against the package), without the CDK."""
    request = BuildRequest.create(Workspace.find(workspace), package, Target(python, arch), UvOptions(**options))
    return build(request, runner)


def half_written(folder: Path) -> list[str]:
    """Private work folders and entries being replaced in every build cache below ``folder``."""
    found = []
    for dirpath, dirnames, _ in os.walk(folder):
        if Path(dirpath).name in ("builds", "wheels", "store", "images"):
            ours = _IN_PROGRESS.fullmatch if Path(dirpath).name != "images" else lambda name: name.startswith(".")
            found += [f"{dirpath}/{name}" for name in dirnames if ours(name)]  # a test's own look-alikes stay
            dirnames.clear()
        else:
            dirnames[:] = [d for d in dirnames if d not in ("node_modules", ".venv", "cdk.out")]
    return sorted(found)


def tree_digest(folder: Path) -> str:
    """A digest of every file's relative path, mode and content below ``folder`` (symlinks by target)."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink():
            digest.update(f"L {rel} {os.readlink(path)}\n".encode())
        elif path.is_file():
            mode = oct(path.stat().st_mode & 0o777)
            digest.update(f"F {rel} {mode} {hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
        else:
            digest.update(f"D {rel} {oct(path.stat().st_mode & 0o777)}\n".encode())
    return digest.hexdigest()


# --- errors ---------------------------------------------------------------------------------------


def assert_complete_error(
    message: str, *, construct: str | None, package: str | None, target: str | None, fix: str, also: Sequence[str] = ()
) -> None:
    """The message names the construct path, the package and the target on their lines, and the fix.

    ``None`` for what the error can't know (no package before the marker is read, say). ``also``: more
    parts the message must contain, such as the cause.
    """
    wanted = [f"construct: {construct}" if construct else None, f"package:   {package}" if package else None]
    wanted += [f"target:    {target}" if target else None, "fix:", fix, *also]
    for part in filter(None, wanted):
        assert part in message, f"{part!r} not in:\n{message}"


# --- synthesizing an app --------------------------------------------------------------------------


def add_function(
    stack: Stack,
    name: str,
    package: str | None,
    *,
    handler: str = "api.handler.main",
    runtime: lambda_.Runtime = lambda_.Runtime.PYTHON_3_12,
    architecture: lambda_.Architecture = lambda_.Architecture.X86_64,
    code: lambda_.Code | None = None,
) -> lambda_.Function:
    fn = lambda_.Function(
        stack, name, runtime=runtime, architecture=architecture, handler=handler, code=code or UvCode()
    )
    if package is not None:
        mark_package(fn, package)
    return fn


def synth_app(
    workspace: Path, populate: Callable[[Stack], object], outdir: Path | None = None, **options: object
) -> tuple[App, Stack]:
    """An app with one stack, populated by ``populate``, bundled with an aspect on ``workspace``."""
    app = App(outdir=str(outdir) if outdir else None)
    stack = Stack(app, "Stack")
    populate(stack)
    Aspects.of(app).add(UvBundlingAspect(workspace=workspace, **options))
    app.synth()
    return app, stack


def synth_error(workspace: Path | None, populate: Callable[[Stack], object], **options: object) -> str:
    """The message of the error that stops synthesizing an app populated by ``populate``."""
    with pytest.raises(RuntimeError) as error:
        if workspace is None:
            app = App()
            populate(Stack(app, "Stack"))
            Aspects.of(app).add(UvBundlingAspect(**options))  # type: ignore[arg-type]
            app.synth()
        else:
            synth_app(workspace, populate, **options)
    return str(error.value)


def function_codes(stack: Stack) -> dict[str, dict]:
    """Logical id -> Code property of every Lambda function in the synthesized stack."""
    resources = Template.from_stack(stack).find_resources("AWS::Lambda::Function")
    return {lid: r["Properties"]["Code"] for lid, r in resources.items()}


def staged_asset(outdir: str | Path, code: dict[str, Any]) -> Path:
    """The folder the CDK staged for a function's ``Code`` (its S3Key is ``<asset hash>.zip``)."""
    key = code["S3Key"]
    assert isinstance(key, str) and key.endswith(".zip"), code
    folder = Path(outdir) / f"asset.{key.removesuffix('.zip')}"
    assert folder.is_dir(), f"no staged asset {folder}"
    return folder


# --- what was built, and running it ---------------------------------------------------------------


def assert_api_asset(asset: Path) -> None:
    """``asset`` is a build of the fixture's ``api``: its handler, its workspace dependency, orjson."""
    assert (asset / "api" / "handler.py").is_file(), sorted(p.name for p in asset.iterdir())
    assert (asset / "common" / "__init__.py").is_file()
    assert any((asset / "orjson").glob("*.so"))


def python_for(version: str) -> str:
    path = find_python(Uv.locate(None).path, version)
    assert path, f"the tests need a Python {version} interpreter where uv finds it"
    return path


def call_handler(
    asset_dir: Path,
    handler: str,
    version: str,
    event: dict | None = None,
    architecture: str = "x86_64",
    layers: Sequence[Path] = (),
) -> Invocation:
    """Import and call the handler from ``asset_dir`` alone (and ``layers``, each holding python/), with the
    runtime's interpreter of ``version``, as ``cdk-uv invoke`` does."""
    fn = LambdaFunction(asset_dir, handler, version, architecture=architecture, timeout=60, layers=tuple(layers))
    return invoke(fn, event or {})
