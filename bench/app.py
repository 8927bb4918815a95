"""The benchmark's CDK app: N functions over K generated packages, with the aspect or without it.

Run by bench/run.py as a fresh process per synth, as `cdk synth` runs an app:

    python bench/app.py aspect N K WORKSPACE OUTDIR
    python bench/app.py plain  N K WORKSPACE OUTDIR ASSETS_JSON   # functions use ready-made folders
    python bench/app.py noop   N K WORKSPACE OUTDIR ASSETS_JSON   # the same, with a do-nothing aspect
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("CDK_DISABLE_VERSION_CHECK", "1")

import jsii
from aws_cdk import App, Aspects, IAspect, Stack
from aws_cdk import aws_lambda as lambda_


@jsii.implements(IAspect)
class DoNothing:
    """What any aspect written in Python costs: node calls visit() in Python for every construct."""

    def visit(self, node: object) -> None:
        pass


def main(mode: str, n: int, k: int, workspace: str, outdir: str, assets: str | None = None) -> None:
    app = App(outdir=outdir)
    folders = json.loads(Path(assets).read_text()) if assets else {}
    # Stacks of at most 50 functions, as real apps split them.
    stacks = [Stack(app, f"Bench{i}") for i in range((n + 49) // 50)]
    for i in range(n):
        package = f"fn{i % k:02d}"
        handler = f"{package}.handler.main"
        stack = stacks[i // 50]
        if mode == "aspect":
            from cdk_uv_aspect import UvCode, mark_package

            fn = lambda_.Function(
                stack,
                f"F{i}",
                runtime=lambda_.Runtime.PYTHON_3_12,
                handler=handler,
                architecture=lambda_.Architecture.X86_64,
                code=UvCode(),
            )
            mark_package(fn, package)
        else:
            lambda_.Function(
                stack,
                f"F{i}",
                runtime=lambda_.Runtime.PYTHON_3_12,
                handler=handler,
                architecture=lambda_.Architecture.X86_64,
                code=lambda_.Code.from_asset(folders[package]),
            )
    if mode == "aspect":
        from cdk_uv_aspect import UvBundlingAspect

        Aspects.of(app).add(UvBundlingAspect(workspace=workspace))
    elif mode == "noop":
        Aspects.of(app).add(DoNothing())
    app.synth()


if __name__ == "__main__":
    mode, n, k, workspace, outdir, *rest = sys.argv[1:]
    main(mode, int(n), int(k), workspace, outdir, *rest)
