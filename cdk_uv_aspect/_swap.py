"""Swap: point a function's code at the built folder, as an asset hashed by its content."""

from __future__ import annotations

import json
from pathlib import Path

from aws_cdk import Annotations
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3_assets as s3_assets

from ._build import Built
from ._cache import INFO
from ._image import ImageSpec
from ._marker import ASSET_ID
from ._metadata import BUILT

BUILT_FOLDERS: dict[str, Path] = {}
"""Asset hash -> the built folder it was made from, for the policy checks (a hash names one content)."""


def swap_zip(function: lambda_.Function, built: Built) -> s3_assets.Asset:
    """Replace ``function``'s code with ``built``'s folder and record what was built on the function."""
    _warn_about_placeholder_asset(function)
    # A plain source-hashed asset of the built folder: its hash is the hash of the output, it is staged
    # once per hash, and no BundlingOptions means no in-process bundling cache to collide in.
    asset = s3_assets.Asset(function, ASSET_ID, path=str(built.asset_dir), deploy_time=True)
    cfn = function.node.default_child
    assert isinstance(cfn, lambda_.CfnFunction)
    cfn.code = lambda_.CfnFunction.CodeProperty(s3_bucket=asset.s3_bucket_name, s3_key=asset.s3_object_key)
    asset.add_resource_metadata(cfn, "Code")
    _record(function, built, asset.asset_hash)
    return asset


def swap_image(
    function: lambda_.Function, built: Built, spec: ImageSpec, context: Path
) -> ecr_assets.DockerImageAsset:
    """Replace an image function's code with an image asset of ``context`` (the built folder + Dockerfile)."""
    _warn_about_placeholder_image(function)
    asset = ecr_assets.DockerImageAsset(
        function, ASSET_ID, directory=str(context),
        platform=ecr_assets.Platform.custom(function.architecture.docker_platform),
        build_args=dict(spec.build_args) or None,
    )  # fmt: skip
    # As DockerImageCode.from_image_asset does (a no-op on the bootstrap repository, which allows it).
    asset.repository.grant_pull(iam.ServicePrincipal("lambda.amazonaws.com"))
    cfn = function.node.default_child
    assert isinstance(cfn, lambda_.CfnFunction)
    cfn.code = lambda_.CfnFunction.CodeProperty(image_uri=asset.image_uri)
    asset.add_resource_metadata(cfn, "Code.ImageUri")
    image = {"python": spec.target.python, "dockerfile": spec.source}
    _record(function, built, asset.asset_hash, image=image)
    return asset


def _record(function: lambda_.Function, built: Built, asset_hash: str, **extra: object) -> None:
    info = built.info or json.loads((built.folder / INFO).read_text())
    BUILT_FOLDERS[asset_hash] = built.asset_dir
    requires_python = built.request.workspace.packages[built.request.package].requires_python
    function.node.add_metadata(
        BUILT,
        {
            "package": built.request.package,
            "target": built.request.target.key,
            "assetHash": asset_hash,
            "files": info["files"],
            "bytes": info["bytes"],
            "buildSeconds": round(built.seconds, 3),
            "cached": built.cached,
            "requiresPython": str(requires_python) if requires_python is not None else None,
            **extra,
        },
    )


def _warn_about_placeholder_asset(function: lambda_.Function) -> None:
    old = function.node.try_find_child("Code")
    if isinstance(old, s3_assets.Asset):
        Annotations.of(function).add_warning_v2(
            "cdk-uv-aspect:placeholder-asset",
            f"{function.node.path}: the code it was created with ({old.node.path}) is an asset, and CDK "
            "still stages and uploads it although the function now uses the uv-built asset. Create the "
            "function with code=UvCode() (from cdk_uv_aspect) to avoid the extra asset.",
        )


def _warn_about_placeholder_image(function: lambda_.Function) -> None:
    old = function.node.try_find_child("AssetImage")  # the id DockerImageCode.from_image_asset uses
    if isinstance(old, ecr_assets.DockerImageAsset):
        Annotations.of(function).add_warning_v2(
            "cdk-uv-aspect:placeholder-image",
            f"{function.node.path}: the code it was created with ({old.node.path}) is an image asset, and "
            "CDK still builds and pushes that image although the function now uses the uv-built image. "
            'Create the function with code=uv_image_code(self, "<handler>") (from cdk_uv_aspect) to avoid '
            "the extra image.",
        )
