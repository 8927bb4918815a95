"""UvPolicyChecks: the aspect that registers the checks; the judging happens in a construct validation."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import IAspect, Stage
from constructs import IConstruct, IValidation

from .._build import LIBRARY_VERSION
from .._errors import PolicyError
from . import engine
from .facts import FunctionFacts, Tree, facts_of
from .options import PolicyOptions
from .rule import NonCompliant
from .rules import BY_ID, RULES


@jsii.implements(IAspect)
class UvPolicyChecks:
    """Checks every Lambda function of the app: uv-built, and its asset would import on Lambda.

    Add it next to the bundling aspect, in any order and at any priority: it only registers a
    validation, which runs after every aspect, so it judges what the bundling aspect produced::

        Aspects.of(app).add(UvBundlingAspect())
        Aspects.of(app).add(UvPolicyChecks())

    Errors fail ``cdk synth``; warnings fail it with ``--strict``. Each function's results go to
    ``uv-policy-report.json`` in the cloud assembly. Like every aspect it does not cross Stage
    boundaries: add it in each Stage too. Options come as a :class:`PolicyOptions`' fields:
    ``UvPolicyChecks(include_cdk_internal=True, size_warning_mb=150)``.
    """

    def __init__(self, **fields: Any) -> None:
        self.options = PolicyOptions(**fields)
        self._scopes: list[str] = []  # paths of the constructs holding a validation
        self._rows: dict[str, dict[str, dict[str, Any]]] = {}  # report file -> function path -> row

    @staticmethod
    def acknowledge(scope: IConstruct, rule_id: str, reason: str) -> None:
        """Accept a rule's finding for ``scope`` and every construct below it, with a reason.

        The finding shows as an info message with the reason, and as "acknowledged" in the report::

            UvPolicyChecks.acknowledge(legacy_stack, "uv-built", "legacy functions, moved in Q3")
        """
        problem = engine._ack_problem({"id": rule_id, "reason": reason})
        if problem:
            raise PolicyError(problem, constructs=[scope.node.path],
                              fix=f"name one of the rules ({', '.join(BY_ID)}) and say why in at least "
                              f"{engine.MIN_REASON} characters")
        scope.node.add_metadata(engine.ACKNOWLEDGE, {"id": rule_id, "reason": reason.strip()})

    def visit(self, node: IConstruct) -> None:
        # The first node visited is where the aspect was added: one validation there judges every
        # function below it. Validations run after all aspects, whatever their order and priority.
        if "" in self._scopes:
            return  # added to the App: every construct is below it (and a path read costs a round trip)
        path = node.node.path
        if not any(path == s or path.startswith(s + "/") for s in self._scopes):
            self._scopes.append(path)
            node.node.add_validation(_Validation(self, node))

    def _judge(self, scope: IConstruct) -> list[str]:
        stage = scope if isinstance(scope, Stage) else Stage.of(scope)
        tree = Tree(scope)
        unchecked: list[str] = []
        rows = {}
        for owner, cfn, owner_path, cfn_path in tree.functions:
            if tree.in_nested_stage(cfn_path):
                # A nested Stage is synthesized before this validation runs: its functions can't be
                # annotated any more, so their checks must come from checks added in that Stage.
                if not any(e.type == engine.CHECKED for e in tree.metadata(owner_path)):
                    unchecked.append(owner_path)
                continue
            facts, outcomes = self._evaluate(owner, cfn, tree, owner_path, cfn_path)
            paths = tree.lineage(owner_path) + ([cfn_path] if cfn_path != owner_path else [])
            acks = engine.acknowledgements(tree.metadata(p) for p in paths)
            final = engine.apply(owner, facts, outcomes, acks)
            rows[facts.path] = engine.report_row(facts, final)
        # Acknowledgements are checked where they can apply: on functions and the constructs above them.
        problems = [problem for path, entries in tree.read().items()
                    for problem in engine.acknowledgement_problems(path, entries)]
        if unchecked:
            problems.append(
                "cdk-uv-aspect: UvPolicyChecks did not reach the functions "
                f"{', '.join(sorted(unchecked))}: aspects do not cross Stage boundaries. Add the checks "
                "inside each Stage as well, e.g. in your Stage's constructor: "
                "Aspects.of(self).add(UvPolicyChecks())"
            )
        if self.options.report and stage is not None:
            self._write_report(Path(stage.outdir) / self.options.report, rows)
        return [p if p.startswith("cdk-uv-aspect:") else f"cdk-uv-aspect: {p}" for p in problems]

    def _evaluate(
        self, owner: IConstruct, cfn: Any, tree: Tree, owner_path: str, cfn_path: str
    ) -> tuple[FunctionFacts, list[engine.Outcome]]:
        try:
            facts = facts_of(owner, cfn, tree, owner_path, cfn_path)
        except Exception as exc:  # unreadable facts: every rule reports it, the synth goes on
            facts = FunctionFacts(path=owner_path, kind="unknown", runtime=None, architecture="unknown",
                                  handler=None)
            message = f"the function's facts could not be read ({type(exc).__name__}: {exc})"
            crashed = NonCompliant(message, level="warning")
            return facts, [engine.Outcome(rule, crashed, crashed=True) for rule in RULES]
        return facts, engine.judge(facts, self.options)

    def _write_report(self, path: Path, rows: dict[str, dict[str, Any]]) -> None:
        # Several scopes of one Stage (the aspect added to two stacks) share one report file.
        merged = self._rows.setdefault(str(path), {})
        merged.update(rows)
        text = json.dumps(engine.report(merged.values(), LIBRARY_VERSION), indent=2) + "\n"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".uv-policy.", dir=path.parent)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)


@jsii.implements(IValidation)
class _Validation:
    def __init__(self, checks: UvPolicyChecks, scope: IConstruct) -> None:
        self._checks = checks
        self._scope = scope

    def validate(self) -> list[str]:
        return self._checks._judge(self._scope)
