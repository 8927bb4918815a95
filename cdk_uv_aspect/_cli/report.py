"""cdk-uv report: every Lambda function of a synthesized assembly, and what was built for it."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from .._assembly import AssemblyFunction
from .common import EXIT_OK, load, size


def add_parser(commands: Any, debug: argparse.ArgumentParser) -> None:
    report = commands.add_parser(
        "report",
        parents=[debug],
        help="every Lambda function of a synthesized assembly and what was built for it",
        description="A table of every Lambda function in the cloud assembly (nested stages included): "
        "construct path, uv package (or 'not uv-built'), target, asset hash, size unzipped and zipped, "
        "file count, build time and whether the build came from the build cache.",
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
    report.set_defaults(run=run)


def run(options: argparse.Namespace) -> int:
    found = load(options.cdk_out)
    records = [_report_row(fn) for fn in found]
    # Marked, but built by no aspect in this assembly: `cdk ls`, `cdk destroy` and `--exclusively` skip it.
    unbuilt = [fn.path for fn in found if fn.package and fn.build is None]
    if unbuilt:
        print(
            f"cdk-uv: {len(unbuilt)} marked function(s) were not built in {options.cdk_out} ({', '.join(unbuilt[:3])}"
            f"{' and more' if len(unbuilt) > 3 else ''}): `cdk ls`, `cdk destroy` and `cdk deploy --exclusively` "
            "skip bundling; run `cdk synth` (with --output if the assembly is elsewhere) to build them",
            file=sys.stderr,
        )
    if options.json:
        print(json.dumps(records, indent=2))
        return EXIT_OK
    marked = {fn.path: fn.package for fn in found}
    rows = [
        {
            "function": r["function"],
            "package": r["package"]
            or (f"{marked[r['function']]} (not built)" if marked[r["function"]] else "not uv-built"),
            "target": r["target"],
            "asset": (r["assetHash"] or "-")[:12],
            "unzipped": size(r["bytes"]),
            "zipped": size(r["zippedBytes"]),
            "files": "-" if r["files"] is None else r["files"],
            "build": "-" if r["buildSeconds"] is None else f"{r['buildSeconds']:.1f}s",
            "cache hit": {True: "yes", False: "no"}.get(r["cached"], "-"),
        }
        for r in records
    ]
    print(_table(rows))
    return EXIT_OK


def _report_row(fn: AssemblyFunction) -> dict[str, Any]:
    """What the report says about one function, with full values (the JSON form)."""
    from .._archive import files_of, write_zip

    build = fn.build or {}
    files = bytes_ = zipped = None
    if fn.asset_dir is not None:
        found = files_of(fn.asset_dir)
        files, bytes_ = len(found), sum(p.stat().st_size for p in found)
        # The size of the zip `cdk-uv build --zip` writes; the CDK's own zip differs by a few bytes.
        with tempfile.TemporaryDirectory() as tmp:
            zipped = write_zip(fn.asset_dir, Path(tmp, "asset.zip"))
    runtime_key = f"{fn.runtime}-{fn.architecture}" if fn.runtime else fn.package_type
    return {
        "function": fn.path,
        "stack": fn.stack,
        "package": build.get("package") or None,
        "target": build.get("target") or runtime_key,
        "handler": fn.handler,
        "assetHash": build.get("assetHash") or (fn.asset_dir.name.removeprefix("asset.") if fn.asset_dir else None),
        "assetDir": str(fn.asset_dir) if fn.asset_dir else None,
        "bytes": build.get("bytes", bytes_),
        "zippedBytes": zipped,
        "files": build.get("files", files),
        "buildSeconds": build.get("buildSeconds"),
        "cached": build.get("cached"),
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
