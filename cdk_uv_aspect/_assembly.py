"""Assembly: the Lambda functions of a synthesized cloud assembly (cdk.out), and what was built for each."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._lambda import python_of
from ._marker import BUILT, MARKER


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
    build: dict[str, Any] | None  # the bundling aspect's record, None when not uv-built
    asset_dir: Path | None  # the staged asset folder of its code, when there is one
    sbom: Path | None = None  # the CycloneDX document of what was built, when there is one
    memory: int = 128  # MemorySize, Lambda's default when the template leaves it out
    timeout: int = 3  # Timeout in seconds, likewise
    environment: dict[str, str] = field(default_factory=dict)  # literal values only, not tokens

    @property
    def python(self) -> str | None:
        return python_of(self.runtime)


def functions(outdir: Path) -> list[AssemblyFunction]:
    """Every Lambda function in the assembly at ``outdir``, nested stages included, sorted by path."""
    return sorted(_functions(outdir, outdir), key=lambda f: f.path)


def _functions(outdir: Path, root: Path) -> Iterator[AssemblyFunction]:
    manifest = json.loads((outdir / "manifest.json").read_text())
    for artifact in manifest.get("artifacts", {}).values():
        kind = artifact.get("type")
        props = artifact.get("properties", {})
        if kind == "cdk:cloud-assembly":
            yield from _functions(outdir / props["directoryName"], root)
        elif kind == "aws:cloudformation:stack":
            yield from _stack_functions(outdir, root, artifact, props)


def _stack_functions(
    outdir: Path, root: Path, artifact: dict[str, Any], props: dict[str, Any]
) -> Iterator[AssemblyFunction]:
    template = json.loads((outdir / props["templateFile"]).read_text())
    metadata = artifact.get("metadata") or {}
    if "additionalMetadataFile" in artifact:
        metadata = {**metadata, **json.loads((outdir / artifact["additionalMetadataFile"]).read_text())}
    by_logical_id: dict[str, str] = {}
    entries_by_path: dict[str, list[dict[str, Any]]] = {}
    for path, entries in metadata.items():
        entries_by_path[path] = entries
        for entry in entries:
            if entry.get("type") == "aws:cdk:logicalId":
                by_logical_id[entry["data"]] = path
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Lambda::Function":
            continue
        res_path = by_logical_id.get(logical_id) or resource.get("Metadata", {}).get("aws:cdk:path", logical_id)
        fn_path = res_path.removesuffix("/Resource")
        entries = entries_by_path.get(fn_path, [])
        package = next((e["data"] for e in entries if e.get("type") == MARKER), None)
        build = next((e["data"] for e in entries if e.get("type") == BUILT), None)
        p = resource.get("Properties", {})
        yield AssemblyFunction(
            path=fn_path.lstrip("/"),
            stack=artifact.get("displayName") or props.get("stackName", ""),
            handler=p.get("Handler"),
            runtime=p.get("Runtime"),
            architecture=(p.get("Architectures") or ["x86_64"])[0],
            package_type=p.get("PackageType", "Zip"),
            package=package if isinstance(package, str) else (package or {}).get("package"),
            build=build,
            asset_dir=_asset_dir(outdir, root, resource, build),
            sbom=_sbom(outdir, root, build),
            memory=p["MemorySize"] if isinstance(p.get("MemorySize"), int) else 128,
            timeout=p["Timeout"] if isinstance(p.get("Timeout"), int) else 3,
            environment={
                k: v for k, v in (p.get("Environment") or {}).get("Variables", {}).items() if isinstance(v, str)
            },
        )


def _asset_dir(outdir: Path, root: Path, resource: dict[str, Any], build: dict[str, Any] | None) -> Path | None:
    staged = resource.get("Metadata", {}).get("aws:asset:path")
    candidates = [outdir / staged] if staged else []
    if build and build.get("assetHash"):
        candidates += [root / f"asset.{build['assetHash']}", outdir / f"asset.{build['assetHash']}"]
    # Without the CLI's aws:asset:path metadata: the default synthesizer's key is "<asset hash>.zip".
    key = resource.get("Properties", {}).get("Code", {}).get("S3Key")
    if isinstance(key, str) and key.endswith(".zip"):
        candidates += [outdir / f"asset.{key.removesuffix('.zip')}"]
    return next((c.resolve() for c in candidates if c.is_dir()), None)


def _sbom(outdir: Path, root: Path, build: dict[str, Any] | None) -> Path | None:
    """The SBOM the bundling aspect wrote: recorded relative to the assembly that holds the assets (the root)."""
    recorded = build.get("sbom") if isinstance(build, dict) else None
    if not isinstance(recorded, str) or not recorded:
        return None
    return next((c.resolve() for c in (root / recorded, outdir / recorded) if c.is_file()), None)
