"""uv-runtime-deprecated: a warning for Python runtimes that Lambda deprecated or is about to."""

from __future__ import annotations

from ..._lambda import RUNTIMES
from ..facts import FunctionFacts
from ..options import PolicyOptions
from ..rule import Compliant, NonCompliant, NotApplicable, Rule, Verdict


def check(facts: FunctionFacts, options: PolicyOptions) -> Verdict:
    if facts.python is None or facts.runtime is None:
        return NotApplicable(f"runtime {facts.runtime or 'unknown'} is not Python")
    runtime = RUNTIMES.get(facts.runtime)
    if runtime is None or runtime.deprecated is None:
        return Compliant(f"no deprecation date known for {facts.runtime}")
    blocks = (
        f"creating functions on it is blocked from {runtime.create_blocked:%Y-%m-%d}, updating from "
        f"{runtime.update_blocked:%Y-%m-%d}"
    )
    if facts.today >= runtime.deprecated:
        return NonCompliant(
            f"Lambda deprecated {facts.runtime} on {runtime.deprecated:%Y-%m-%d} (no more security patches); {blocks}"
        )
    days = (runtime.deprecated - facts.today).days
    if days <= options.deprecation_notice_days:
        return NonCompliant(
            f"Lambda deprecates {facts.runtime} on {runtime.deprecated:%Y-%m-%d}, in {days} days; {blocks}"
        )
    return Compliant(f"{facts.runtime} is supported until {runtime.deprecated:%Y-%m-%d}")


RULE = Rule(
    id="uv-runtime-deprecated",
    severity="warning",
    title="The runtime is not deprecated",
    explanation="A warning when Lambda has deprecated the function's Python runtime, or will within "
    "deprecation_notice_days (180 by default). Deprecated runtimes get no security patches, and Lambda "
    "later blocks creating and then updating functions on them.",
    fix="move the function to a supported runtime (e.g. Runtime.PYTHON_3_13) and widen the package's "
    "requires-python if needed; the bundling aspect rebuilds it for that Python",
    check=check,
)
