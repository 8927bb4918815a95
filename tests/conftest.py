"""Shared fixtures: a private copy of the fixture workspace, a private build cache, synthesis helpers."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from packaging.version import Version

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("CDK_DISABLE_VERSION_CHECK", "1")

from aws_cdk import App, Aspects, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Template

from cdk_uv_aspect import UvBundlingAspect, UvCode, mark_package
from cdk_uv_aspect._invoke import Invocation, invoke
from cdk_uv_aspect._uv import Uv, find_python

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).parent.parent
CDK_VERSION = Version(importlib.metadata.version("aws-cdk-lib"))


def needs_cdk(version: str, what: str) -> pytest.MarkDecorator:
    """Skip a test on aws-cdk-lib releases older than ``version``, which lack ``what``.

    `./dev test` runs the synth tests a second time on the oldest release the library supports.
    """
    return pytest.mark.skipif(Version(version) > CDK_VERSION,
                              reason=f"needs aws-cdk-lib {version} or newer ({what}); this is {CDK_VERSION}")


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A private copy of tests/fixtures/ws (packages common, api, app), locked."""
    dest = tmp_path / "ws"
    shutil.copytree(FIXTURES / "ws", dest)
    return dest


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private, empty build cache, also the default for aspects created in the test."""
    path = tmp_path / "cache"
    monkeypatch.setenv("CDK_UV_CACHE_DIR", str(path))
    return path


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
    fn = lambda_.Function(stack, name, runtime=runtime, architecture=architecture, handler=handler,
                          code=code or UvCode())
    if package is not None:
        mark_package(fn, package)
    return fn


def synth_app(workspace: Path, populate: Callable[[Stack], object], outdir: Path | None = None,
              **options: object) -> tuple[App, Stack]:
    """An app with one stack, populated by ``populate``, bundled with an aspect on ``workspace``."""
    app = App(outdir=str(outdir) if outdir else None)
    stack = Stack(app, "Stack")
    populate(stack)
    Aspects.of(app).add(UvBundlingAspect(workspace=workspace, **options))
    app.synth()
    return app, stack


def function_codes(stack: Stack) -> dict[str, dict]:
    """Logical id -> Code property of every Lambda function in the synthesized stack."""
    resources = Template.from_stack(stack).find_resources("AWS::Lambda::Function")
    return {lid: r["Properties"]["Code"] for lid, r in resources.items()}


def python_for(version: str) -> str:
    path = find_python(Uv.locate(None).path, version)
    assert path, f"the tests need a Python {version} interpreter where uv finds it"
    return path


def call_handler(asset_dir: Path, handler: str, version: str, event: dict | None = None,
                 architecture: str = "x86_64") -> Invocation:
    """Import and call the handler from ``asset_dir`` alone, with the interpreter of ``version``."""
    return invoke(asset_dir, handler, python_for(version), event or {}, architecture=architecture)


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
