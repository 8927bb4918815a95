"""cdk-uv verify: build again what the caches served a synth, and compare byte for byte."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .common import EXIT_FAILED, EXIT_OK, UsageError, load, wrapped


def add_parser(commands: Any, debug: argparse.ArgumentParser) -> None:
    verify = commands.add_parser(
        "verify",
        parents=[debug],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="build again what the build cache or the team cache served a synth, and compare byte for byte",
        description=wrapped(
            "Builds are reproducible, so any machine can audit the caches: every build a synthesized "
            "cloud assembly records is built again here, from the workspace, into a private empty cache (no "
            "cache read, nothing uploaded), and compared file by file (content and executable bit) with the "
            "entry the synth used: the build cache's, else the team cache's ($CDK_UV_REMOTE_CACHE). Each entry "
            "is reported `same`, `DIFFERS` (with the files that differ) or `unverified` (with why: its entry is "
            "gone, or the workspace is not the synth's). Exit code 0 when every build is the same, 1 otherwise."
        ),
        epilog="examples:\n  cdk synth && cdk-uv verify\n  cdk-uv verify cdk.out --sample 5 --json",
    )
    verify.add_argument(
        "cdk_out",
        nargs="?",
        default=Path("cdk.out"),
        type=Path,
        metavar="CDK_OUT",
        help="the cloud assembly folder (default: cdk.out)",
    )
    verify.add_argument("--sample", type=_count, metavar="N", help="verify N builds chosen at random, not all")
    verify.add_argument(
        "--workspace",
        type=Path,
        metavar="DIR",
        help="the uv workspace the synth built from (default: the nearest folder with a uv.lock, upward from the "
        "current directory)",
    )
    verify.add_argument("--json", action="store_true", help="print the verdicts as a JSON list")
    verify.set_defaults(run=run)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of builds: give 1 or more")
    return value


def run(options: argparse.Namespace) -> int:
    from .._options import UvOptions
    from .._verify import builds_of, verify
    from .._workspace import Workspace

    found = load(options.cdk_out)
    builds = builds_of((fn.path, fn.build) for fn in found if fn.build)
    if not builds:
        raise UsageError(
            f"{options.cdk_out} records no uv build to verify: run `cdk synth` (with this version of cdk-uv-aspect)"
        )
    uv_options = UvOptions(workspace=options.workspace)
    workspace = Workspace.find(uv_options.workspace)
    print(
        f"cdk-uv: building {options.sample or len(builds)} of {len(builds)} build(s) again from {workspace.root}...",
        file=sys.stderr,
        flush=True,
    )
    checked = verify(
        builds, workspace, uv_options, sample=options.sample, log=lambda line: print(line, file=sys.stderr)
    )
    if options.json:
        print(json.dumps([asdict(c) for c in checked], indent=2))
    else:
        for c in checked:
            shown = ", ".join(c.functions[:2]) + (f" and {len(c.functions) - 2} more" if len(c.functions) > 2 else "")
            verdict = {"same": "same", "differs": "DIFFERS"}.get(c.verdict, c.verdict)
            print(f"{verdict:<10} {c.package} ({c.target}) {c.key} for {shown}")
            for difference in c.differences[:10]:
                print(f"           {difference}")
            if len(c.differences) > 10:
                print(f"           and {len(c.differences) - 10} more")
            if c.why:
                print(f"           {c.why}")
    bad = [c for c in checked if c.verdict != "same"]
    if bad:
        print(
            f"cdk-uv: {len(bad)} of {len(checked)} build(s) not verified: "
            + ", ".join(f"{c.key} ({c.verdict})" for c in bad),
            file=sys.stderr,
        )
        return EXIT_FAILED
    print(f"cdk-uv: {len(checked)} build(s) verified: the same bytes as built here", file=sys.stderr)
    return EXIT_OK
