"""uv-runtime-sdk: boto3/botocore left out of the asset are no newer than what the runtime is known to ship."""

from __future__ import annotations

from packaging.version import InvalidVersion, Version

from ..._lambda import SHIPPED_SDK
from ..facts import FunctionFacts
from ..options import PolicyOptions
from ..rule import Compliant, NonCompliant, NotApplicable, Rule, Verdict


def check(facts: FunctionFacts, options: PolicyOptions) -> Verdict:
    if facts.python is None:
        return NotApplicable(f"runtime {facts.runtime or 'unknown'} is not Python")
    omitted = facts.build.omitted if facts.build else {}
    sdk = {name: version for name, version in omitted.items() if name in ("boto3", "botocore")}
    if not sdk:
        return Compliant("nothing of the SDK left to the runtime: boto3 and botocore are in the asset, or not used")
    locked = ", ".join(f"{name} {version}" for name, version in sorted(sdk.items()))
    runtime = f"python{facts.python}"
    shipped = SHIPPED_SDK.get(runtime)
    if shipped is None:
        return NonCompliant(
            f"{locked} left out of the asset (omit_runtime_provided), and no version of the SDK that {runtime} "
            "ships is known (AWS does not publish it; it varies by Region and over time): the function may "
            "run with an older one"
        )
    newer = [
        f"{name} {version} is locked, {runtime} is known to ship {getattr(shipped, name)}"
        for name, version in sorted(sdk.items())
        if _newer(version, getattr(shipped, name))
    ]
    if newer:
        return NonCompliant(
            f"{'; '.join(newer)} (as of {shipped.checked:%Y-%m-%d}, from {shipped.source}): left out of the "
            "asset (omit_runtime_provided), the function may run with the older one"
        )
    return Compliant(f"{locked} left out; {runtime} ships at least boto3 {shipped.boto3}, botocore {shipped.botocore}")


def _newer(locked: str, shipped: str) -> bool:
    try:
        return Version(locked) > Version(shipped)
    except InvalidVersion:
        return locked != shipped


RULE = Rule(
    id="uv-runtime-sdk",
    severity="warning",
    title="The SDK left to the runtime is new enough",
    explanation="With UvOptions(omit_runtime_provided=True), boto3 and botocore (and what only they need) are "
    "left out of the asset and the function imports the runtime's own. A warning when the locked version "
    "is newer than the newest the runtime is known to ship (the table in cdk_uv_aspect/_lambda.py, with "
    "its source and date), or when none is known: code written against the locked SDK may call an API "
    "the runtime's SDK does not have yet.",
    fix="check the version the runtime ships in your Region (print(boto3.__version__) in a function) and "
    "acknowledge the finding with it as the reason, or lock a boto3 no newer than that, or keep boto3 in "
    "the asset (omit_runtime_provided=False)",
    check=check,
)
