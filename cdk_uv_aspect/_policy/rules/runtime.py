"""uv-runtime-deprecated: a warning for Python runtimes that Lambda deprecated or is about to."""

from __future__ import annotations

import datetime

from ..facts import FunctionFacts
from ..options import PolicyOptions
from ..rule import Compliant, NonCompliant, NotApplicable, Result, Rule

_D = datetime.date
# Lambda's dates per runtime: deprecated (no more patches), then creating and updating functions on it
# blocked. From https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html as cfn-lint 1.58
# records it (data/AdditionalSpecs/LmbdRuntimeLifecycle.json), checked November 2026.
LIFECYCLE: dict[str, tuple[datetime.date, datetime.date, datetime.date]] = {
    "python3.8": (_D(2024, 10, 14), _D(2027, 2, 1), _D(2027, 3, 3)),
    "python3.9": (_D(2025, 12, 15), _D(2027, 2, 1), _D(2027, 3, 3)),
    "python3.10": (_D(2026, 10, 31), _D(2027, 2, 1), _D(2027, 3, 3)),
    "python3.11": (_D(2027, 6, 30), _D(2027, 7, 31), _D(2027, 8, 31)),
    "python3.12": (_D(2028, 10, 31), _D(2028, 11, 30), _D(2029, 1, 10)),
    "python3.13": (_D(2029, 6, 30), _D(2029, 7, 31), _D(2029, 8, 31)),
    "python3.14": (_D(2029, 6, 30), _D(2029, 7, 31), _D(2029, 8, 31)),
}
_RETIRED = _D(2024, 1, 9)  # python3.7 and older: creating functions is blocked already


def check(facts: FunctionFacts, options: PolicyOptions) -> Result:
    if facts.python is None or facts.runtime is None:
        return NotApplicable(f"runtime {facts.runtime or 'unknown'} is not Python")
    dates = LIFECYCLE.get(facts.runtime)
    if dates is None:
        minor = facts.python.partition(".")[2]
        if facts.python.startswith("3.") and minor.isdigit() and int(minor) < 8:
            return NonCompliant(
                f"Lambda retired {facts.runtime}: functions on it can't be created "
                f"(since {_RETIRED:%Y-%m-%d}) or updated"
            )
        return Compliant(f"no deprecation date known for {facts.runtime}")
    deprecated, create_block, update_block = dates
    blocks = f"creating functions on it is blocked from {create_block:%Y-%m-%d}, updating from {update_block:%Y-%m-%d}"
    if facts.today >= deprecated:
        return NonCompliant(
            f"Lambda deprecated {facts.runtime} on {deprecated:%Y-%m-%d} (no more security patches); {blocks}"
        )
    days = (deprecated - facts.today).days
    if days <= options.deprecation_notice_days:
        return NonCompliant(f"Lambda deprecates {facts.runtime} on {deprecated:%Y-%m-%d}, in {days} days; {blocks}")
    return Compliant(f"{facts.runtime} is supported until {deprecated:%Y-%m-%d}")


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
