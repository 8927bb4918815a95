"""uv-built: every Python Lambda function is marked and its code is the asset the bundling aspect built."""

from __future__ import annotations

from ..facts import FunctionFacts
from ..options import PolicyOptions
from ..rule import Compliant, NonCompliant, NotApplicable, Rule, Verdict


def check(facts: FunctionFacts, options: PolicyOptions) -> Verdict:
    if facts.python is None and facts.package is None:
        return NotApplicable(f"runtime {facts.runtime or 'unknown'} is not Python")
    if facts.internal and not options.include_cdk_internal:
        return NotApplicable(f"the CDK's own function ({facts.internal})")
    if facts.kind == "CfnFunction":
        return NonCompliant(
            "a raw CfnFunction with a Python runtime: the bundling aspect builds only aws_lambda.Function constructs"
        )
    if facts.package is None:
        return NonCompliant("a Python function without the uv marker: its code is not built by uv")
    if not facts.bundling_required:
        return NotApplicable("bundling is skipped for this stack (cdk ls, or deploy --exclusively)")
    if facts.package_type == "Image" and facts.build is not None:
        # An image function carries no zip asset: the aspect's uv:build record is the evidence.
        return Compliant(f"an image built from package {facts.build.package}")
    if facts.build is None or not facts.swapped:
        return NonCompliant(
            f"marked with package {facts.package!r}, but its code is not the asset the "
            "bundling aspect builds (no aspect reached it, or something replaced its code)"
        )
    return Compliant(f"built from package {facts.build.package} for {facts.build.target}")


RULE = Rule(
    id="uv-built",
    severity="error",
    title="Python functions are built by uv",
    explanation="Every Python Lambda function (L2 Function or raw CfnFunction) is marked with its uv "
    "workspace package and deploys the asset the bundling aspect built, so its code and dependencies "
    "come from uv.lock. The CDK's own functions are exempt unless include_cdk_internal=True.",
    fix='mark the function (fn.node.add_metadata("uv", "<package>")), create it with code=UvCode(), and '
    "add Aspects.of(app).add(UvBundlingAspect()) (in each Stage too); or acknowledge it with a reason: "
    'UvPolicyChecks.acknowledge(fn, "uv-built", "<why it is not uv-built>")',
    check=check,
)
