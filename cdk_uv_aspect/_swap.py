"""Swap: point a function's code (or a marked layer's content) at the built folder, as an asset hashed by its
content, and record what was built on it (``uv:build``)."""

from __future__ import annotations

import contextlib
import errno
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Stage
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3_assets as s3_assets
from constructs import IConstruct, Node

from . import _sbom, _state
from ._annotations import add_warning
from ._build import Built
from ._files import atomic_write, file_error
from ._image import ImageSpec
from ._placeholder import has_placeholder
from ._record import BUILT, BuildRecord, ImageRecord

ASSET_ID = "UvAsset"
"""The id of the asset construct the aspect adds under a function (``Code`` is taken by CDK's own)."""


@dataclass(frozen=True)
class ZipAsset:
    """A built folder's asset in one stack, with the values every function of that stack reads from it."""

    asset: s3_assets.Asset
    path: str
    bucket: str
    key: str
    hash: str
    sbom: str  # the SBOM's path in the cloud assembly, relative to it


def swap_zip(
    function: lambda_.Function,
    node: Node,
    built: Built,
    shared: ZipAsset | None = None,
    cfn: lambda_.CfnFunction | None = None,
) -> ZipAsset:
    """Replace ``function``'s code with ``built``'s folder and record what was built on the function.

    ``node`` is the function's ``.node``, ``cfn`` its ``default_child`` where already read. The functions of
    one stack built from one folder share its asset (``shared``), as functions given one ``Code.from_asset``
    do: it lives under the first of them.
    """
    if not has_placeholder(function):
        _warn_about_placeholder_asset(function, node)
    if shared is None:
        # A plain source-hashed asset of the built folder: its hash is the hash of the output, it is
        # staged once per hash, and no BundlingOptions means no in-process bundling cache to collide in.
        with staging(function):
            asset = s3_assets.Asset(function, ASSET_ID, path=str(built.asset_dir), deploy_time=True)
            sbom = write_sbom(function, built)
        shared = ZipAsset(asset, asset.node.path, asset.s3_bucket_name, asset.s3_object_key, asset.asset_hash, sbom)
    child = cfn or node.default_child
    assert isinstance(child, lambda_.CfnFunction)
    child.code = lambda_.CfnFunction.CodeProperty(s3_bucket=shared.bucket, s3_key=shared.key)
    shared.asset.add_resource_metadata(child, "Code")
    _state.SWAPPED.add(_state.jsii_ref(function))
    record_build(node, built, shared.hash, shared.sbom, asset=shared.path)
    return shared


def swap_image(function: lambda_.Function, built: Built, spec: ImageSpec, context: Path) -> ecr_assets.DockerImageAsset:
    """Replace an image function's code with an image asset of ``context`` (the built folder + Dockerfile)."""
    _warn_about_placeholder_image(function)
    with staging(function):
        asset = ecr_assets.DockerImageAsset(
            function,
            ASSET_ID,
            directory=str(context),
            platform=ecr_assets.Platform.custom(function.architecture.docker_platform),
            build_args=dict(spec.build_args) or None,
        )
        sbom = write_sbom(function, built)
    # As DockerImageCode.from_image_asset does (a no-op on the bootstrap repository, which allows it).
    asset.repository.grant_pull(iam.ServicePrincipal("lambda.amazonaws.com"))
    cfn = function.node.default_child
    assert isinstance(cfn, lambda_.CfnFunction)
    cfn.code = lambda_.CfnFunction.CodeProperty(image_uri=asset.image_uri)
    asset.add_resource_metadata(cfn, "Code.ImageUri")
    image = ImageRecord(spec.target.python, spec.source, spec.base)
    _state.SWAPPED.add(_state.jsii_ref(function))
    record_build(function.node, built, asset.asset_hash, sbom, image=image)
    return asset


def swap_layer(layer: lambda_.LayerVersion, node: Node, built: Built) -> None:
    """Point a marked layer's content at its built folder, and record the build on it (``uv:build``).

    ``node`` is the layer's ``.node``."""
    with staging(layer):
        asset = s3_assets.Asset(layer, ASSET_ID, path=str(built.asset_dir), deploy_time=True)
        sbom = write_sbom(layer, built)
    cfn = node.default_child
    assert isinstance(cfn, lambda_.CfnLayerVersion)
    cfn.content = lambda_.CfnLayerVersion.ContentProperty(s3_bucket=asset.s3_bucket_name, s3_key=asset.s3_object_key)
    asset.add_resource_metadata(cfn, "Content")
    _state.SWAPPED.add(_state.jsii_ref(layer))  # a layer made with code=UvCode() passes its check
    record_build(node, built, asset.asset_hash, sbom, asset=asset.node.path, layer=True)


def write_sbom(function: IConstruct, built: Built) -> str:
    """Put the build's SBOM into the cloud assembly, beside the assets the CDK stages there; its path there.

    Named by its content, as the CDK names assets: written once, never changed, the same name on every synth
    of the same build.
    """
    content = built.sbom.read_bytes()
    relative = f"{_sbom.FOLDER}/{_sbom.file_name(built.request.package, built.request.target.key, content)}"
    stage = Stage.of(function)
    assert stage is not None  # every construct that synthesizes is in an App
    path = Path(stage.asset_outdir) / relative
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, content)
    return relative


@contextlib.contextmanager
def staging(scope: IConstruct) -> Iterator[None]:
    """The CDK staging an asset of ``scope`` into the cloud assembly, or us writing there: a failure of the
    file system becomes our error, naming the path (or the assembly, when the failure names none).

    The CDK's own error is node's (``ENOSPC: no space left on device, write``), without the construct,
    the package or what to do, and sometimes without a path.
    """
    stage = Stage.of(scope)
    assert stage is not None  # every construct that synthesizes is in an App
    assembly = Path(stage.asset_outdir)
    instead = "or synthesize into a folder with room, on another disk (`cdk synth --output <folder>`)"
    try:
        yield
    except OSError as exc:
        raise file_error(exc, where=assembly, instead=instead) from None
    except RuntimeError as exc:  # from node, through jsii
        failure = node_error(str(exc))
        if failure is None:
            raise
        raise file_error(failure, where=assembly, instead=instead) from None


# node's file system errors: "ENOSPC: no space left on device, copyfile '<from>' -> '<to>'", "EROFS:
# read-only file system, mkdir '<path>'", "ENOSPC: no space left on device, write".
_NODE_ERROR = re.compile(r"\b(E[A-Z]+): ([^,\n]+)(?:, \w+(?: '([^'\n]*)')?(?: -> '([^'\n]*)')?)?")


def node_error(message: str) -> OSError | None:
    """The ``OSError`` a message of node's file system module stands for (the path written, if it names
    one), or None when the message is not one."""
    for found in _NODE_ERROR.finditer(message):
        code = getattr(errno, found[1], None)
        if isinstance(code, int):
            return OSError(code, found[2], found[4] or found[3])
    return None


def record_build(
    node: Node,
    built: Built,
    asset_hash: str,
    sbom: str | None,
    *,
    asset: str | None = None,
    image: ImageRecord | None = None,
    layer: bool = False,
) -> BuildRecord:
    """Write what was built on a function or a layer (``node``: its ``.node``): the ``uv:build`` record, the
    one place it is written. The built folder is remembered by asset hash, for the policy checks."""
    _state.BUILT_FOLDERS[asset_hash] = built.asset_dir
    request, info = built.request, built.info
    requires_python = request.workspace.packages[request.package].requires_python
    record = BuildRecord(
        package=request.package,
        target=request.target.key,
        asset_hash=asset_hash,
        extras=request.extras,
        groups=request.groups,
        omitted=dict(info.get("omitted") or {}),
        sbom=sbom,
        files=info["files"],
        bytes=info["bytes"],
        build_seconds=round(built.seconds, 3),
        cached=built.cached,
        origin=built.origin,
        # A layer's folder is derived from a build: not one verify rebuilds. A function's code split from its
        # dependencies, or slimmed, is derived from the build it records: the one verify rebuilds.
        key=None if layer else str((info.get("derived") or {}).get("from") or built.key),
        requires_python=str(requires_python) if requires_python is not None else None,
        asset=asset,
        image=image,
        layer=layer,
        slim=info.get("slim"),
    )
    node.add_metadata(BUILT, record.as_data())
    return record


def _warn_about_placeholder_asset(function: lambda_.Function, node: Node) -> None:
    old = node.try_find_child("Code")
    if isinstance(old, s3_assets.Asset):
        add_warning(
            function,
            "cdk-uv-aspect:placeholder-asset",
            f"{function.node.path}: the code it was created with ({old.node.path}) is an asset, and CDK "
            "still stages and uploads it although the function now uses the uv-built asset. Create the "
            "function with code=UvCode() (from cdk_uv_aspect) to avoid the extra asset.",
        )


def _warn_about_placeholder_image(function: lambda_.Function) -> None:
    old = function.node.try_find_child("AssetImage")  # the id DockerImageCode.from_image_asset uses
    if isinstance(old, ecr_assets.DockerImageAsset):
        add_warning(
            function,
            "cdk-uv-aspect:placeholder-image",
            f"{function.node.path}: the code it was created with ({old.node.path}) is an image asset, and "
            "CDK still builds and pushes that image although the function now uses the uv-built image. "
            'Create it as a DockerImageFunction with code=uv_image_code(self, "<handler>") (from cdk_uv_aspect) '
            "to avoid the extra image.",
        )
