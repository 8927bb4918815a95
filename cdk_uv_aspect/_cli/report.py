"""cdk-uv report: every Lambda function of a synthesized assembly, and what was built for it."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from .._assembly import AssemblyFunction
from .common import EXIT_FAILED, EXIT_OK, load, size


def add_parser(commands: Any, debug: argparse.ArgumentParser) -> None:
    report = commands.add_parser(
        "report",
        parents=[debug],
        help="every Lambda function of a synthesized assembly and what was built for it",
        description="A table of every Lambda function in the cloud assembly (nested stages included): "
        "construct path, uv package (or 'not uv-built'), target, extras and dependency groups deployed, asset "
        "hash, size unzipped and zipped, file count, build time and where the build came from (built here, "
        "the build cache or the team cache); for functions with layers, their size unzipped and how many; for "
        "slimmed assets (UvOptions(slim=...)), their size before slimming and whether every module was proven "
        "to import; for image functions, the base image (its registry left out, a pinned digest shortened). An "
        "asset folder missing from the assembly is shown as 'missing', said on stderr, and exits 1. With "
        "--sbom: the CycloneDX SBOM of each function's asset instead.",
    )
    report.add_argument(
        "cdk_out",
        nargs="?",
        default=Path("cdk.out"),
        type=Path,
        metavar="CDK_OUT",
        help="the cloud assembly folder (default: cdk.out)",
    )
    report.add_argument("--json", action="store_true", help="print a JSON list with full values instead")
    report.add_argument(
        "--sbom",
        action="store_true",
        help="list each function's SBOM (a CycloneDX 1.5 JSON file in the assembly, its path relative to CDK_OUT) "
        "and how many components it names",
    )
    report.set_defaults(run=run)


def run(options: argparse.Namespace) -> int:
    found = load(options.cdk_out)
    assembly = Path(options.cdk_out).resolve()
    if options.sbom:
        sboms = [_sbom_row(fn, assembly) for fn in found]
        shown = [{k: "-" if v is None else v for k, v in r.items()} for r in sboms]
        print(json.dumps(sboms, indent=2) if options.json else _table(shown))
        return EXIT_OK
    records = [_report_row(fn, assembly) for fn in found]
    # Marked, but built by no aspect in this assembly: `cdk ls`, `cdk destroy` and `--exclusively` skip it.
    unbuilt = [fn.path for fn in found if fn.package and fn.build is None]
    if unbuilt:
        print(
            f"cdk-uv: {len(unbuilt)} marked function(s) were not built in {options.cdk_out} ({', '.join(unbuilt[:3])}"
            f"{' and more' if len(unbuilt) > 3 else ''}): `cdk ls`, `cdk destroy` and `cdk deploy --exclusively` "
            "skip bundling; run `cdk synth` (with --output if the assembly is elsewhere) to build them",
            file=sys.stderr,
        )
    missing = [fn.asset_missing for fn in found if fn.asset_missing is not None]
    if missing:
        # The sizes recorded at synth would describe files that are no longer there: none are shown.
        print(
            f"cdk-uv: the asset folders of {len(missing)} function(s) are missing from {options.cdk_out} "
            f"({', '.join(p.name for p in missing[:3])}{' and more' if len(missing) > 3 else ''}): the assembly can't "
            "be deployed as it is; run `cdk synth` again (with --output if the assembly is elsewhere) to stage them",
            file=sys.stderr,
        )
    status = EXIT_FAILED if missing else EXIT_OK
    if options.json:
        print(json.dumps(records, indent=2))
        return status
    marked = {fn.path: fn.package for fn in found}
    rows = [
        {
            "function": r["function"],
            "package": r["package"]
            or (f"{marked[r['function']]} (not built)" if marked[r["function"]] else "not uv-built"),
            "target": r["target"],
            "extras": ",".join(r["extras"]) or "-",
            "groups": ",".join(r["groups"]) or "-",
            "asset": (r["assetHash"] or "-")[:12],
            "unzipped": "missing" if r["assetMissing"] else size(r["bytes"]),
            "zipped": "missing" if r["assetMissing"] else size(r["zippedBytes"]),
            "files": "missing" if r["assetMissing"] else "-" if r["files"] is None else r["files"],
            "build": "-" if r["buildSeconds"] is None else f"{r['buildSeconds']:.1f}s",
            "from": r["origin"] or "-",
            "slim": _slim_cell(r["slim"]),
            "layers": _layers_cell(r["layers"], r["layersElsewhere"]),
            "base image": _short_image(r["baseImage"]),
        }
        for r in records
    ]
    for column, needed in [
        ("slim", any(r["slim"] for r in records)),  # nothing slimmed, no layers, no image: no column for them
        ("layers", any(r["layers"] or r["layersElsewhere"] for r in records)),
        ("base image", any(r["baseImage"] for r in records)),
    ]:
        if not needed:
            rows = [{k: v for k, v in row.items() if k != column} for row in rows]
    print(_table(rows))
    return status


def _in_assembly(path: Path | None, assembly: Path) -> str | None:
    """A file of the assembly relative to it (the same on every machine), anything else in full."""
    if path is None:
        return None
    return path.relative_to(assembly).as_posix() if path.is_relative_to(assembly) else str(path)


def _report_row(fn: AssemblyFunction, assembly: Path) -> dict[str, Any]:
    """What the report says about one function, with full values (the JSON form)."""
    from .._archive import files_of, write_zip

    build = fn.build
    files = bytes_ = zipped = None
    if fn.asset_dir is not None:
        found = files_of(fn.asset_dir)
        files, bytes_ = len(found), sum(p.stat().st_size for p in found)
        # The size of the zip `cdk-uv build --zip` writes; the CDK's own zip differs by a few bytes.
        with tempfile.TemporaryDirectory() as tmp:
            zipped = write_zip(fn.asset_dir, Path(tmp, "asset.zip"))
    runtime_key = f"{fn.runtime}-{fn.architecture}" if fn.runtime else fn.package_type
    staged_hash = fn.asset_dir.name.removeprefix("asset.") if fn.asset_dir else None
    return {
        "function": fn.path,
        "stack": fn.stack,
        "package": build.package if build else None,
        "target": (build.target if build else None) or runtime_key,
        "extras": list(build.extras) if build else [],
        "groups": list(build.groups) if build else [],
        "omitted": dict(build.omitted) if build else {},
        "sbom": _in_assembly(fn.sbom, assembly),
        "handler": fn.handler,
        "assetHash": (build.asset_hash if build else None) or staged_hash,
        "assetDir": str(fn.asset_dir) if fn.asset_dir else None,
        "assetMissing": str(fn.asset_missing) if fn.asset_missing else None,
        "bytes": None if fn.asset_missing else build.bytes if build and build.bytes is not None else bytes_,
        "zippedBytes": zipped,
        "files": None if fn.asset_missing else build.files if build and build.files is not None else files,
        "buildSeconds": build.build_seconds if build else None,
        "cached": build.cached if build else None,
        # Where the build came from: "built" here, the build "cache", or the "team cache" (older records: from cached).
        "origin": (build.origin or {True: "cache", False: "built"}.get(build.cached)) if build else None,  # type: ignore[arg-type]
        "key": build.key if build else None,
        "baseImage": build.image.base if build and build.image else None,
        "slim": dict(build.slim) if build and build.slim else None,
        "layers": [_layer_row(folder, assembly) for folder in fn.layers],
        "layersElsewhere": fn.layers_elsewhere,
    }


def _slim_cell(slim: dict[str, Any] | None) -> str:
    """``68.2 MB before, proven`` for a slimmed asset: its size before slimming, and whether every module was
    shown to import (``not proven`` where no interpreter of the target runs here)."""
    if not slim:
        return "-"
    proof = "proven" if slim.get("proven") else "not proven" if slim.get("unproven") else "nothing to prove"
    return f"{size(slim.get('bytesBefore'))} before, {proof}"


def _layer_row(folder: Path, assembly: Path) -> dict[str, Any]:
    from .._archive import files_of

    found = files_of(folder)
    return {
        "assetDir": _in_assembly(folder, assembly),
        "bytes": sum(p.stat().st_size for p in found),
        "files": len(found),
    }


def _layers_cell(layers: list[dict[str, Any]], elsewhere: int) -> str:
    """``73.2 MB in 1`` (unzipped, as Lambda counts them toward its 250 MB), ``+ 1 by ARN`` for layers
    this assembly does not hold."""
    cell = f"{size(sum(layer['bytes'] for layer in layers))} in {len(layers)}" if layers else ""
    if elsewhere:
        cell = f"{cell} + {elsewhere} by ARN" if cell else f"{elsewhere} by ARN"
    return cell or "-"


def _short_image(reference: str | None) -> str:
    """``lambda/python:3.12@sha256:0278bf81511e`` for ``public.ecr.aws/lambda/python:3.12@sha256:<64 hex>``."""
    if not reference:
        return "-"
    first, _, rest = reference.partition("/")
    name = rest if rest and ("." in first or ":" in first or first == "localhost") else reference
    image, at, digest = name.partition("@")
    return f"{image}@{digest[:19]}" if at else image


def _sbom_row(fn: AssemblyFunction, assembly: Path) -> dict[str, Any]:
    """A function's SBOM: where it is, and how many components (besides the function's package) it names."""
    build = fn.build
    components = None
    if fn.sbom is not None:
        components = len(json.loads(fn.sbom.read_text()).get("components", []))
    return {
        "function": fn.path,
        "package": build.package if build else "not uv-built",
        "target": build.target if build else None,
        "components": components,
        "sbom": _in_assembly(fn.sbom, assembly),
    }


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no Lambda functions)"
    headers = list(rows[0])
    widths = {h: max(len(h), *(len(str(r[h])) for r in rows)) for h in headers}
    lines = ["  ".join(h.ljust(widths[h]) for h in headers).rstrip()]
    lines.append("  ".join("-" * widths[h] for h in headers))
    lines += ["  ".join(str(r[h]).ljust(widths[h]) for h in headers).rstrip() for r in rows]
    return "\n".join(lines)
