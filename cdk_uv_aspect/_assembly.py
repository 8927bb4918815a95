"""Assembly: the Lambda functions of a synthesized cloud assembly (cdk.out), and what was built for each.

A little longer than most modules, and one job: reading a cloud assembly's files (its manifest, each
stack's template and nested templates, the asset manifests, the staged folders), each read by one
function here, for the commands that read an assembly (``report``, ``invoke``, ``profile``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._errors import AssemblyError
from ._lambda import python_of
from ._marker import marked_package
from ._record import BuildRecord, recorded


@dataclass(frozen=True)
class ImageAsset:
    """One ``dockerImages`` entry of a ``*.assets.json``: its id and its source, as cdk-assets reads them."""

    id: str  # the asset hash: the tag of the function's ImageUri
    source: dict[str, Any]  # directory, dockerFile, dockerBuildArgs, platform...
    manifest_dir: Path  # the source's directory is relative to the manifest's folder
    display: str = ""

    @property
    def directory(self) -> Path:
        return (self.manifest_dir / str(self.source.get("directory", ""))).resolve()

    @property
    def local_tag(self) -> str:
        """The tag cdk-assets builds the image under before it pushes it."""
        return f"cdkasset-{self.id.lower()}"


@dataclass(frozen=True)
class AssemblyFunction:
    """A Lambda function as the cloud assembly describes it."""

    path: str  # construct path, e.g. "UvSample/Orders"
    stack: str
    handler: str | None
    runtime: str | None
    architecture: str  # "x86_64" or "arm64"
    package_type: str  # "Zip" or "Image"
    package: str | None  # from the uv marker
    build: BuildRecord | None  # the bundling aspect's record, None when not uv-built
    asset_dir: Path | None  # the staged asset folder of its code, when there is one
    asset_missing: Path | None = None  # the staged asset folder the assembly names, when it is gone
    sbom: Path | None = None  # the CycloneDX document of what was built, when there is one
    memory: int = 128  # MemorySize, Lambda's default when the template leaves it out
    timeout: int = 3  # Timeout in seconds, likewise
    environment: dict[str, str] = field(default_factory=dict)  # literal values only, not tokens
    deploy_time: dict[str, Any] = field(default_factory=dict)  # variables known only at deploy: name -> its value
    command: tuple[str, ...] = ()  # an image function's ImageConfig command: its handler
    image: ImageAsset | None = None  # an image function's image asset, when this assembly builds it
    layers: tuple[Path, ...] = ()  # the staged folders of its layers of the same template, in its order
    logical_id: str = ""  # in its template
    layers_elsewhere: int = 0  # the layers it names that this assembly does not stage (an ARN, an import)

    @property
    def python(self) -> str | None:
        return python_of(self.runtime)


def functions(outdir: Path) -> list[AssemblyFunction]:
    """Every Lambda function in the assembly at ``outdir``, nested stages included, sorted by path.

    A file of the assembly that can't be read (missing, not JSON, not laid out as the CDK writes it) raises
    an ``AssemblyError`` naming it and why."""
    return sorted(_functions(outdir, outdir), key=lambda f: f.path)


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Whatever goes wrong while reading ``path`` (or what it says) is an ``AssemblyError`` naming it."""
    try:
        yield
    except (OSError, UnicodeError, ValueError, LookupError, TypeError, AttributeError) as exc:
        if isinstance(exc, json.JSONDecodeError):
            cause = f"it is not JSON ({exc})"
        elif isinstance(exc, OSError):
            cause = exc.strerror or str(exc)
        elif isinstance(exc, UnicodeError):
            cause = f"it is not UTF-8 text ({exc})"
        else:
            shown = f"no {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
            cause = f"it is not laid out as the CDK writes it ({shown})"
        raise AssemblyError(
            f"{path} can't be read: {cause}",
            fix="synthesize the app again (`cdk synth`, with --output if the assembly is elsewhere); a cloud "
            "assembly is read as the CDK wrote it, not edited by hand",
        ) from exc


def _json(path: Path) -> Any:
    with _reading(path):
        return json.loads(path.read_text())


def _functions(outdir: Path, root: Path) -> Iterator[AssemblyFunction]:
    path = outdir / "manifest.json"
    manifest = _json(path)
    with _reading(path):
        for artifact in manifest.get("artifacts", {}).values():
            kind = artifact.get("type")
            props = artifact.get("properties", {})
            if kind == "cdk:cloud-assembly":
                yield from _functions(outdir / props["directoryName"], root)
            elif kind == "aws:cloudformation:stack":
                yield from _stack_functions(outdir, root, artifact, props, path)


def _stack_functions(
    outdir: Path, root: Path, artifact: dict[str, Any], props: dict[str, Any], manifest: Path
) -> Iterator[AssemblyFunction]:
    source = outdir / props["templateFile"]
    template = _json(source)
    metadata = artifact.get("metadata") or {}
    described = manifest
    if "additionalMetadataFile" in artifact:
        described = outdir / artifact["additionalMetadataFile"]
        metadata = {**metadata, **_json(described)}
    with _reading(described):
        # The stack's metadata covers its nested stacks too; logical ids are unique within one template
        # only, so each is read within the (nested) stack that holds it.
        scopes = {_nested_scope(path) for path in metadata if path.endswith(".NestedStackResource")}

        def scope_of(path: str) -> str:
            return max((s for s in scopes if path.startswith(s + "/")), key=len, default="")

        ids: dict[tuple[str, str], str] = {}
        for path, entries in metadata.items():
            for entry in entries:
                if entry.get("type") == "aws:cdk:logicalId":
                    ids[(scope_of(path), entry["data"])] = path
        stack = artifact.get("displayName") or props.get("stackName", "")
    yield from _template_functions(outdir, root, template, source, "", ids, metadata, stack)


def _template_functions(
    outdir: Path,
    root: Path,
    template: dict[str, Any],
    source: Path,
    scope: str,
    ids: dict[tuple[str, str], str],
    metadata: dict[str, list[dict[str, Any]]],
    stack: str,
) -> Iterator[AssemblyFunction]:
    """The functions of one template: a stack's, or a nested stack's (``scope``: its construct path)."""
    images = _image_assets(outdir)
    zips = _zip_assets(outdir)
    with _reading(source):
        for logical_id, resource in template.get("Resources", {}).items():
            kind = resource.get("Type")
            if kind == "AWS::CloudFormation::Stack":
                path = ids.get((scope, logical_id))
                nested = _nested_template(outdir, resource)
                if path and nested is not None:
                    inner, where = nested
                    yield from _template_functions(
                        outdir, root, inner, where, _nested_scope(path), ids, metadata, stack
                    )
                continue
            if kind != "AWS::Lambda::Function":
                continue
            res_path = ids.get((scope, logical_id)) or resource.get("Metadata", {}).get("aws:cdk:path", logical_id)
            fn_path = res_path.removesuffix("/Resource")
            entries = [(str(e.get("type")), e.get("data")) for e in metadata.get(fn_path, []) if isinstance(e, dict)]
            build = recorded(entries)
            p = resource.get("Properties", {})
            variables = (p.get("Environment") or {}).get("Variables") or {}
            yield AssemblyFunction(
                path=fn_path.lstrip("/"),
                stack=stack,
                handler=p.get("Handler"),
                runtime=p.get("Runtime"),
                architecture=(p.get("Architectures") or ["x86_64"])[0],
                package_type=p.get("PackageType", "Zip"),
                package=marked_package(entries),
                build=build,
                asset_dir=_asset_dir(outdir, root, resource, build),
                asset_missing=_asset_missing(outdir, root, resource, build, zips),
                sbom=_sbom(outdir, root, build),
                memory=p["MemorySize"] if isinstance(p.get("MemorySize"), int) else 128,
                timeout=p["Timeout"] if isinstance(p.get("Timeout"), int) else 3,
                environment={k: v for k, v in variables.items() if isinstance(v, str)},
                deploy_time={k: v for k, v in variables.items() if not isinstance(v, str)},
                command=tuple((p.get("ImageConfig") or {}).get("Command") or ()),
                image=images.get(_image_tag(p.get("Code", {}).get("ImageUri"))),
                layers=(layers := _layer_dirs(outdir, template, p.get("Layers"))),
                layers_elsewhere=len(p["Layers"]) - len(layers) if isinstance(p.get("Layers"), list) else 0,
                logical_id=logical_id,
            )


def _layer_dirs(outdir: Path, template: dict[str, Any], layers: Any) -> tuple[Path, ...]:
    """The staged folders of a function's layers defined in its template (``{"Ref": <logical id>}``)."""
    found = []
    resources = template.get("Resources", {})
    for ref in layers if isinstance(layers, list) else []:
        layer = resources.get(ref.get("Ref")) if isinstance(ref, dict) else None
        if not isinstance(layer, dict) or layer.get("Type") != "AWS::Lambda::LayerVersion":
            continue
        staged = layer.get("Metadata", {}).get("aws:asset:path")
        key = layer.get("Properties", {}).get("Content", {}).get("S3Key")
        candidates = [outdir / staged] if isinstance(staged, str) else []
        if isinstance(key, str) and key.endswith(".zip"):
            candidates.append(outdir / f"asset.{key.removesuffix('.zip')}")
        folder = next((c.resolve() for c in candidates if c.is_dir()), None)
        if folder is not None:
            found.append(folder)
    return tuple(found)


def _image_assets(outdir: Path) -> dict[str, ImageAsset]:
    assets = {}
    for manifest in sorted(outdir.glob("*.assets.json")):
        found = _json(manifest)
        with _reading(manifest):
            for asset_id, entry in found.get("dockerImages", {}).items():
                assets[asset_id] = ImageAsset(asset_id, entry["source"], outdir, entry.get("displayName") or asset_id)
    return assets


def _image_tag(uri: Any) -> str:
    """The tag of an ImageUri, the asset hash for an image asset: ``{"Fn::Sub": "...:<hash>"}`` or a string."""
    text = uri.get("Fn::Sub", "") if isinstance(uri, dict) else str(uri or "")
    return text.rpartition(":")[2] if isinstance(text, str) else ""


def _nested_scope(resource_path: str) -> str:
    """``/Parent/Inner`` for a nested stack's resource ``/Parent/Inner.NestedStack/Inner.NestedStackResource``."""
    holder = resource_path.rsplit("/", 1)[0]
    return holder.removesuffix(".NestedStack")


def _nested_template(outdir: Path, resource: dict[str, Any]) -> tuple[dict[str, Any], Path] | None:
    """A nested stack's template and its file: named by the CLI's asset metadata, else by its hash in an
    asset manifest."""
    staged = resource.get("Metadata", {}).get("aws:asset:path")
    candidates = [outdir / staged] if isinstance(staged, str) else []
    url = json.dumps(resource.get("Properties", {}).get("TemplateURL", ""))
    for manifest in sorted(outdir.glob("*.assets.json")):
        assets = _json(manifest)
        with _reading(manifest):
            for digest, asset in assets.get("files", {}).items():
                source = asset.get("source", {}).get("path")
                if f"/{digest}.json" in url and isinstance(source, str):
                    candidates.append(outdir / source)
    found = next((c for c in candidates if c.is_file()), None)
    return (_json(found), found) if found is not None else None


def _asset_dir(outdir: Path, root: Path, resource: dict[str, Any], build: BuildRecord | None) -> Path | None:
    staged = resource.get("Metadata", {}).get("aws:asset:path")
    candidates = [outdir / staged] if staged else []
    if build and build.asset_hash:
        candidates += [root / f"asset.{build.asset_hash}", outdir / f"asset.{build.asset_hash}"]
    # Without the CLI's aws:asset:path metadata: the default synthesizer's key is "<asset hash>.zip".
    key = resource.get("Properties", {}).get("Code", {}).get("S3Key")
    if isinstance(key, str) and key.endswith(".zip"):
        candidates += [outdir / f"asset.{key.removesuffix('.zip')}"]
    return next((c.resolve() for c in candidates if c.is_dir()), None)


def _zip_assets(outdir: Path) -> dict[str, str]:
    """The folders the asset manifests zip, by the S3 object key they are published under: ``<hash>.zip``."""
    found = {}
    for manifest in sorted(outdir.glob("*.assets.json")):
        assets = _json(manifest)
        with _reading(manifest):
            for asset in assets.get("files", {}).values():
                source = asset.get("source", {})
                if source.get("packaging") != "zip" or not isinstance(source.get("path"), str):
                    continue
                for destination in asset.get("destinations", {}).values():
                    if isinstance(destination.get("objectKey"), str):
                        found[destination["objectKey"]] = source["path"]
    return found


def _asset_missing(
    outdir: Path, root: Path, resource: dict[str, Any], build: BuildRecord | None, zips: dict[str, str]
) -> Path | None:
    """The staged folder the assembly says a function's code is in (the CLI's ``aws:asset:path``, the
    aspect's record, an asset manifest), when no such folder is there: deleted, or a cdk.out copied
    without its assets."""
    if _asset_dir(outdir, root, resource, build) is not None:
        return None
    staged = resource.get("Metadata", {}).get("aws:asset:path")
    key = resource.get("Properties", {}).get("Code", {}).get("S3Key")
    if isinstance(staged, str) and staged:
        return (outdir / staged).absolute()
    if build and build.asset_hash:
        return (root / f"asset.{build.asset_hash}").absolute()
    if isinstance(key, str) and key in zips:
        return (outdir / zips[key]).absolute()
    return None


def _sbom(outdir: Path, root: Path, build: BuildRecord | None) -> Path | None:
    """The SBOM the bundling aspect wrote: recorded relative to the assembly that holds the assets (the root)."""
    if build is None or build.sbom is None:
        return None
    return next((c.resolve() for c in (root / build.sbom, outdir / build.sbom) if c.is_file()), None)
