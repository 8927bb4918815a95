"""uv-init-budget: the function's init, measured from its asset on this machine, fits its budget.

Off unless a budget is set (``PolicyOptions(init_budget_ms=...)``, or the marker's ``init_budget_ms``): each
function that can run here is started as ``cdk-uv profile`` starts it, 3 times; over budget, once more with
``-X importtime`` to name its three heaviest imports.
"""

from __future__ import annotations

from ..._emulation import host_architecture
from ..._profile import AssemblyChangedError, InitFailed, profile
from ..._start import CannotRunHere, LambdaFunction, has_native_code, interpreter
from ..facts import FunctionFacts
from ..options import PolicyOptions
from ..rule import Compliant, NonCompliant, NotApplicable, Rule, Verdict

RUNS = 3


def check(facts: FunctionFacts, options: PolicyOptions) -> Verdict:
    budget = facts.init_budget_ms if facts.init_budget_ms is not None else options.init_budget_ms
    if budget is None:
        return NotApplicable("no init budget (PolicyOptions(init_budget_ms=...) or the marker's init_budget_ms)")
    if facts.package_type == "Image":
        return NotApplicable("an image function: its init is not measured at synthesis")
    if facts.asset_dir is None or facts.python is None or not facts.handler:
        return NotApplicable("no uv-built Python asset and handler to start")
    fn = LambdaFunction(
        code=facts.asset_dir,
        handler=facts.handler,
        python=facts.python,
        architecture=facts.architecture,
        name=facts.path.rsplit("/", 1)[-1],
        timeout=facts.timeout,
        runtime=facts.runtime or "",
        environment=facts.variables,
        layers=facts.layer_dirs,
    )
    host = host_architecture()
    if fn.architecture != host and has_native_code([fn.code, *fn.layers]):
        return NotApplicable(f"not measured: its native code is for {fn.architecture} and this machine is {host}")
    try:
        command = interpreter(fn)
        measured = profile(fn, command, runs=RUNS, without_bytecode=False, trace=False)
        if measured.init_ms <= budget:
            took = f"init {measured.init_ms:.0f} ms (median of {RUNS} local cold starts)"
            return Compliant(f"{took}, budget {budget:g} ms")
        traced = profile(fn, command, runs=1, without_bytecode=False)
    except CannotRunHere as exc:
        return NotApplicable(f"not measured: {exc}")
    except (InitFailed, AssemblyChangedError) as exc:
        return NonCompliant(f"its init could not be measured: {exc}", level="warning")
    heaviest = ", ".join(f"{name} {ms:.0f} ms" for name, ms in traced.distributions()[:3])
    return NonCompliant(
        f"init {measured.init_ms:.0f} ms (median of {RUNS} local cold starts), over its budget of {budget:g} ms; "
        f"its heaviest imports: {heaviest}"
    )


RULE = Rule(
    id="uv-init-budget",
    severity="error",
    title="The init fits its budget",
    explanation="With a budget set (PolicyOptions(init_budget_ms=...), or a function's marker), each function "
    "that can run on this machine is started from its asset as Lambda would start it (the runtime's Python, "
    "its layers, Lambda's environment, the bytecode shipped) and its init, importing the handler's module, "
    "is timed: the median of 3 cold starts must fit the budget. A local measurement: Lambda adds its own "
    "start, and its CPU follows the memory setting. Functions of another architecture with native code, "
    "and image functions, are not measured.",
    fix="import what only some invocations need inside the handler (lazily), drop heavy dependencies, or "
    "raise the budget; `cdk-uv profile FUNCTION` shows where the init goes",
    check=check,
)
