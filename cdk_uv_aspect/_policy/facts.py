"""Facts: what the rules judge about one Lambda function, read from its constructs after every aspect ran."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aws_cdk import Stack, Stage, Token
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3_assets as s3_assets
from constructs import IConstruct

from .._marker import ASSET_ID, BUILT, marker_of
from .._swap import BUILT_FOLDERS

# The CDK marks its own handler functions (singleton providers, custom resource providers, log
# retention) with metadata of these types; CustomResourceConfig finds them the same way.
CDK_INTERNAL_PREFIX = "aws:cdk:is-custom-resource-handler-"


@dataclass(frozen=True)
class FunctionFacts:
    """One Lambda function as deployed: from its ``CfnFunction``, its marker and what was built."""

    path: str  # the construct path of the L2 Function, or of the raw CfnFunction
    kind: str  # "Function" (L2, or a subclass) or "CfnFunction" (raw L1)
    runtime: str | None  # "python3.12"; None when unset or a token
    architecture: str  # "x86_64" or "arm64"
    handler: str | None
    package_type: str = "Zip"
    package: str | None = None  # the uv marker's package name, as written
    build: Mapping[str, Any] | None = None  # the bundling aspect's uv:build record
    swapped: bool = False  # the function's code is the uv-built asset
    asset_dir: Path | None = None  # the built folder that the asset was made from
    internal: str | None = None  # the CDK metadata that marks it as the CDK's own function
    bundling_required: bool = True  # False for `cdk ls` or stacks left out by --exclusively
    today: datetime.date = field(default_factory=datetime.date.today)

    @property
    def python(self) -> str | None:
        """``"3.12"`` for a Python runtime, else None."""
        if self.runtime and self.runtime.startswith("python"):
            return self.runtime.removeprefix("python")
        return None

    @property
    def target(self) -> str | None:
        if self.build and self.build.get("target"):
            return str(self.build["target"])
        return f"{self.runtime}-{self.architecture}" if self.runtime else None


def function_constructs(scope: IConstruct) -> list[tuple[IConstruct, lambda_.CfnFunction]]:
    """(owner, CfnFunction) for every Lambda function under ``scope``: owner is the L2 when there is one."""
    found = []
    for construct in scope.node.find_all():
        if isinstance(construct, lambda_.CfnFunction):
            parent = construct.node.scope
            owner: IConstruct = construct
            # Compared by path: jsii gives a new Python proxy for each read of a JS-made construct.
            default = parent.node.default_child if isinstance(parent, lambda_.Function) else None
            if default is not None and default.node.path == construct.node.path:
                owner = parent
            found.append((owner, construct))
    return found


def facts_of(owner: IConstruct, cfn: lambda_.CfnFunction) -> FunctionFacts:
    """Read the facts of one function. Tokens (values known only at deploy time) read as unknown."""
    stack = Stack.of(cfn)
    architectures = _known(cfn.architectures) or ["x86_64"]
    internal = next(
        (e.type for c in {id(owner): owner, id(cfn): cfn}.values() for e in c.node.metadata
         if e.type.startswith(CDK_INTERNAL_PREFIX)),
        None,
    )
    build = next((e.data for e in owner.node.metadata if e.type == BUILT), None)
    marker = marker_of(owner)
    package = marker.get("package") if isinstance(marker, dict) else marker
    asset = owner.node.try_find_child(ASSET_ID)
    swapped = False
    asset_dir = None
    if isinstance(asset, s3_assets.Asset) and isinstance(cfn.code, lambda_.CfnFunction.CodeProperty):
        swapped = stack.resolve(cfn.code.s3_key) == stack.resolve(asset.s3_object_key)
        asset_dir = _asset_dir(asset, owner)
    return FunctionFacts(
        path=owner.node.path,
        kind="Function" if owner is not cfn else "CfnFunction",
        runtime=_known(cfn.runtime),
        architecture=str(architectures[0]),
        handler=_known(cfn.handler),
        package_type=_known(cfn.package_type) or "Zip",
        package=package if isinstance(package, str) else None,
        build=build if isinstance(build, Mapping) else None,
        swapped=swapped,
        asset_dir=asset_dir,
        internal=internal,
        bundling_required=stack.bundling_required,
    )


def _known(value: Any) -> Any:
    if value is None or (isinstance(value, str) and Token.is_unresolved(value)):
        return None
    if isinstance(value, list) and any(isinstance(v, str) and Token.is_unresolved(v) for v in value):
        return None
    return value


def _asset_dir(asset: s3_assets.Asset, owner: IConstruct) -> Path | None:
    """The folder the asset was made from: recorded by the swap, else the staged copy."""
    recorded = BUILT_FOLDERS.get(asset.asset_hash)
    if recorded is not None and recorded.is_dir():
        return recorded
    staged = Path(asset.asset_path)
    if not staged.is_absolute():
        stage = Stage.of(owner)
        if stage is None:
            return None
        staged = Path(stage.outdir) / staged
    return staged if staged.is_dir() else None
