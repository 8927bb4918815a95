"""Facts: what the rules judge about one Lambda function, read from its constructs after every aspect ran."""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aws_cdk import AssetStaging, Stack, Stage, Token
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3_assets as s3_assets
from constructs import IConstruct

from .. import _state
from .._lambda import python_of
from .._marker import MARKER, marked_package
from .._record import BuildRecord, recorded
from .._swap import ASSET_ID
from .tree import Tree

# The CDK marks its own handler functions (singleton providers, custom resource providers, log
# retention) with metadata of these types; CustomResourceConfig finds them the same way. Releases before
# aws-cdk-lib 2.154 do not: there, their code is an asset from inside the aws-cdk-lib package.
CDK_INTERNAL_PREFIX = "aws:cdk:is-custom-resource-handler-"
_CDK_PACKAGE = f"{os.sep}node_modules{os.sep}aws-cdk-lib{os.sep}"


@dataclass(frozen=True)
class FunctionFacts:
    """One Lambda function as deployed: from its ``CfnFunction``, its marker and what was built."""

    path: str  # the construct path of the L2 Function, or of the raw CfnFunction
    kind: str  # "Function" (L2, or a subclass) or "CfnFunction" (raw L1)
    runtime: str | None  # "python3.12"; None when unset or a token
    architecture: str  # "x86_64" or "arm64"
    handler: str | None
    package_type: str = "Zip"
    package: str | None = None  # the uv marker's package name
    build: BuildRecord | None = None  # the bundling aspect's uv:build record
    swapped: bool = False  # the function's code is the uv-built asset
    asset_dir: Path | None = None  # the built folder that the asset was made from
    internal: str | None = None  # the CDK metadata that marks it as the CDK's own function
    bundling_required: bool = True  # False for `cdk ls` or stacks left out by --exclusively
    edge: bool = False  # the function of a cloudfront.experimental.EdgeFunction (Lambda@Edge)
    environment: tuple[str, ...] = ()  # its environment variables' names (read for Lambda@Edge functions only)
    layer_dirs: tuple[Path, ...] = ()  # the folders of its layers defined in this app, in its order
    unmeasured_layers: int = 0  # its layers whose content is not in this app (an ARN, another stack's)
    init_budget_ms: float | None = None  # the marker's own init budget
    variables: Mapping[str, str] = field(default_factory=dict)  # literal environment (read when a budget applies)
    timeout: int = 3  # seconds, Lambda's default when unset or a token
    today: datetime.date = field(default_factory=datetime.date.today)

    @property
    def python(self) -> str | None:
        """``"3.12"`` for a Python runtime or a uv-built Python image, else None."""
        if python_of(self.runtime):
            return python_of(self.runtime)
        image = self.build.image if self.build else None
        if self.package_type == "Image" and image is not None and image.python:
            return image.python
        return None

    @property
    def target(self) -> str | None:
        if self.build and self.build.target:
            return self.build.target
        return f"{self.runtime}-{self.architecture}" if self.runtime else None


def facts_of(
    owner: IConstruct,
    cfn: lambda_.CfnFunction,
    tree: Tree,
    owner_path: str,
    cfn_path: str,
    *,
    budget: float | None = None,
) -> FunctionFacts:
    """Read the facts of one function. Tokens (values known only at deploy time) read as unknown.

    ``budget``: the checks' init budget; with it (or the marker's own), the literal environment is read too."""
    entries = tree.metadata(owner_path)
    architectures = _known(cfn.architectures) or ["x86_64"]
    # The CDK writes these on the L2 Function (SingletonFunction forwards its metadata there).
    internal = next((e.type for e in entries if e.type.startswith(CDK_INTERNAL_PREFIX)), None)
    pairs = [(e.type, e.data) for e in entries]
    build = recorded(pairs)
    package = marked_package(pairs)
    marker = next((data for kind, data in pairs if kind == MARKER), None)
    own_budget = marker.get("init_budget_ms") if isinstance(marker, Mapping) else None
    # The zip swap records the asset it used (functions of one stack share it): None for images.
    asset_path = build.asset if build is not None and owner_path != cfn_path else None
    asset = tree.construct(asset_path) if isinstance(asset_path, str) else None
    swapped = False
    asset_dir = None
    code = cfn.code if isinstance(asset, s3_assets.Asset) else None  # a struct: read it once
    if isinstance(asset, s3_assets.Asset) and isinstance(code, lambda_.CfnFunction.CodeProperty):
        # The swap set the code from the asset's own tokens: the same strings while nothing replaced it.
        swapped = code.s3_key == asset.s3_object_key and code.s3_bucket == asset.s3_bucket_name
        asset_dir = _asset_dir(asset, owner)
    runtime = _known(cfn.runtime)
    if internal is None and package is None and owner_path != cfn_path and str(runtime).startswith("python"):
        internal = _cdk_own_asset(tree, owner_path)
    package_type = _known(cfn.package_type) or "Zip"
    handler = _known(cfn.handler)
    if package_type == "Image" and build is not None:
        # An image holds the built folder as it is (at LAMBDA_TASK_ROOT); its command is the handler.
        asset_dir = _state.BUILT_FOLDERS.get(build.asset_hash)
        config = cfn.image_config
        command = _known(getattr(config, "command", None)) if config is not None else None
        handler = command[0] if command else None
    edge = owner_path in tree.edge
    layer_dirs, unmeasured = _layers(cfn, tree) if package_type == "Zip" else ((), 0)
    measured = package_type == "Zip" and asset_dir is not None and (budget is not None or own_budget is not None)
    timeout = _known(cfn.timeout) if measured else None
    return FunctionFacts(
        path=owner_path,
        kind="Function" if owner_path != cfn_path else "CfnFunction",
        runtime=runtime,
        architecture=str(architectures[0]),
        handler=handler,
        package_type=package_type,
        package=package,
        build=build,
        swapped=swapped,
        asset_dir=asset_dir,
        internal=internal,
        bundling_required=tree.bundling_required(cfn_path),
        edge=edge,
        environment=_environment(cfn) if edge else (),
        layer_dirs=layer_dirs,
        unmeasured_layers=unmeasured,
        init_budget_ms=float(own_budget) if isinstance(own_budget, (int, float)) else None,
        variables=_variables(cfn) if measured else {},
        timeout=int(timeout) if isinstance(timeout, (int, float)) else 3,
    )


def _layers(cfn: lambda_.CfnFunction, tree: Tree) -> tuple[tuple[Path, ...], int]:
    """The folders of a function's layers that this app builds or stages, and how many others it has.

    The L2 Function renders its layers lazily: resolve them (``{"Ref": <logical id>}`` for a layer of the
    same stack; an ARN or an import for any other)."""
    stack = Stack.of(cfn)
    rendered = stack.resolve(cfn._cfn_properties.get("layers")) or []
    found: list[Path] = []
    unmeasured = 0
    for ref in rendered if isinstance(rendered, list) else []:
        layer = tree.layer(stack, ref["Ref"]) if isinstance(ref, dict) and isinstance(ref.get("Ref"), str) else None
        owner = layer.node.scope if layer is not None else None
        folder = None
        if owner is not None:
            # The asset the bundling aspect gave it (a marked layer), else Code.from_asset's.
            asset = owner.node.try_find_child(ASSET_ID) or owner.node.try_find_child("Code")
            folder = _asset_dir(asset, owner) if isinstance(asset, s3_assets.Asset) else None
        if folder is None:
            unmeasured += 1
        else:
            found.append(folder)
    return tuple(found), unmeasured


def _environment(cfn: lambda_.CfnFunction) -> tuple[str, ...]:
    """The names of a function's environment variables."""
    return tuple(sorted(_rendered_environment(cfn)))


def _variables(cfn: lambda_.CfnFunction) -> dict[str, str]:
    """A function's environment variables with literal values (those set at deploy time are left out)."""
    return {name: value for name, value in _rendered_environment(cfn).items() if isinstance(value, str)}


def _rendered_environment(cfn: lambda_.CfnFunction) -> dict[str, Any]:
    """The L2 Function renders its environment lazily, which the property read through jsii loses: resolve
    the properties the CfnFunction will render."""
    rendered = Stack.of(cfn).resolve(cfn._cfn_properties.get("environment")) or {}
    variables = rendered.get("variables") or rendered.get("Variables") or {}
    return dict(variables)


def _known(value: Any) -> Any:
    if value is None or (isinstance(value, str) and Token.is_unresolved(value)):
        return None
    if isinstance(value, list) and any(isinstance(v, str) and Token.is_unresolved(v) for v in value):
        return None
    return value


def _cdk_own_asset(tree: Tree, owner_path: str) -> str | None:
    """Whether an unmarked function's code is an asset from inside the aws-cdk-lib package: the CDK's own."""
    staging = tree.construct(f"{owner_path}/Code/Stage")  # Code.from_asset's asset, and its staging
    source = staging.source_path if isinstance(staging, AssetStaging) else None
    return "its code is an asset of aws-cdk-lib" if source and _CDK_PACKAGE in source else None


def _asset_dir(asset: s3_assets.Asset, owner: IConstruct) -> Path | None:
    """The folder the asset was made from: recorded by the swap, else the staged copy."""
    recorded = _state.BUILT_FOLDERS.get(asset.asset_hash)
    if recorded is not None and recorded.is_dir():
        return recorded
    staged = Path(asset.asset_path)
    if not staged.is_absolute():
        stage = Stage.of(owner)
        if stage is None:
            return None
        staged = Path(stage.outdir) / staged
    return staged if staged.is_dir() else None
