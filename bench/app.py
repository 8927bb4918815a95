"""The benchmark's CDK app: N functions over K generated packages, built one of four ways.

Run by bench/run.py as a fresh process per synth, as `cdk synth` runs an app:

    python bench/app.py MODE N K WORKSPACE OUTDIR [--prebuilt FOLDERS_JSON] [--big] [--count FILE]

MODE:
    plain   Code.from_asset on ready-made folders (FOLDERS_JSON: package -> folder), no aspect
    noop    the same, with an aspect that does nothing: the floor of any aspect written in Python
    seed    the seed recipe (seed_recipe.py): a construct per function, bundled by `uv sync` each synth
    aspect  cdk-uv-aspect: UvCode() placeholders, marked, built by UvBundlingAspect

--big adds around each function what real apps have there (an explicit log group, a queue feeding it,
a role allowed to invoke it, a policy on its role), about 14 constructs per function in all; --count
writes the number of constructs in the app after synthesis to FILE.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("CDK_DISABLE_VERSION_CHECK", "1")

import jsii
from aws_cdk import App, Aspects, IAspect, Stack
from aws_cdk import aws_lambda as lambda_

sys.path.insert(0, str(Path(__file__).resolve().parent))  # workspace, seed_recipe
from workspace import PER_STACK, package_of

MODES = ("plain", "noop", "seed", "aspect")


@jsii.implements(IAspect)
class DoNothing:
    """What any aspect written in Python costs: node calls visit() in Python for every construct."""

    def visit(self, node: object) -> None:
        pass


def build(mode: str, n: int, k: int, workspace: str, outdir: str, prebuilt: dict[str, str], big: bool = False) -> App:
    app = App(outdir=outdir)
    stacks = [Stack(app, f"Bench{s}") for s in range((n + PER_STACK - 1) // PER_STACK)]
    for i in range(n):
        stack, package = stacks[i // PER_STACK], package_of(i, k)
        common: dict[str, Any] = {
            "runtime": lambda_.Runtime.PYTHON_3_12,
            "architecture": lambda_.Architecture.X86_64,
            "handler": f"{package}.handler.main",
        }
        if big:
            from aws_cdk import aws_logs as logs

            common["log_group"] = logs.LogGroup(stack, f"F{i}Logs", retention=logs.RetentionDays.ONE_WEEK)
        if mode == "aspect":
            from cdk_uv_aspect import UvCode, mark_package

            fn = lambda_.Function(stack, f"F{i}", code=UvCode(), **common)
            mark_package(fn, package)
        elif mode == "seed":
            from seed_recipe import SeedFunction

            fn = SeedFunction(stack, f"F{i}", package=package, workspace=workspace, **common)
        else:
            fn = lambda_.Function(stack, f"F{i}", code=lambda_.Code.from_asset(prebuilt[package]), **common)
        if big:
            _surround(stack, i, fn)
    if mode == "aspect":
        from cdk_uv_aspect import UvBundlingAspect

        Aspects.of(app).add(UvBundlingAspect(workspace=workspace))
    elif mode == "noop":
        Aspects.of(app).add(DoNothing())
    return app


def _surround(stack: Stack, i: int, fn: lambda_.Function) -> None:
    """A queue feeding the function, a role that may invoke it, and a policy on its own role."""
    from aws_cdk import aws_iam as iam
    from aws_cdk import aws_lambda_event_sources as sources
    from aws_cdk import aws_sqs as sqs

    queue = sqs.Queue(stack, f"F{i}Queue")
    fn.add_event_source(sources.SqsEventSource(queue, batch_size=10))
    invoker = iam.Role(stack, f"F{i}Invoker", assumed_by=iam.ServicePrincipal("events.amazonaws.com"))
    fn.grant_invoke(invoker)
    iam.Policy(stack, f"F{i}Policy", roles=[fn.role] if fn.role else None, statements=[
        iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[queue.queue_arn]),
    ])  # fmt: skip


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=MODES)
    parser.add_argument("n", type=int)
    parser.add_argument("k", type=int)
    parser.add_argument("workspace")
    parser.add_argument("outdir")
    parser.add_argument("--prebuilt", type=Path)
    parser.add_argument("--big", action="store_true")
    parser.add_argument("--count", type=Path)
    args = parser.parse_args(argv)
    prebuilt = json.loads(args.prebuilt.read_text()) if args.prebuilt else {}
    app = build(args.mode, args.n, args.k, args.workspace, args.outdir, prebuilt, args.big)
    app.synth()
    if args.count:
        args.count.write_text(str(len(app.node.find_all())))


if __name__ == "__main__":
    main(sys.argv[1:])
