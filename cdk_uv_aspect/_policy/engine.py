"""The engine: run every rule on a function's facts, apply acknowledgements, annotate, and report.

Findings become CDK annotations on the function: errors fail `cdk synth` (the CLI stops on error
annotations, after the cloud assembly and the report are written), warnings fail it only with
`--strict`. A rule that raises becomes a finding of that rule at its severity, never a crashed synth.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from constructs import IConstruct

from .._annotations import add_error, add_info, add_warning
from .facts import FunctionFacts
from .options import PolicyOptions
from .rule import Compliant, Level, NonCompliant, NotApplicable, Rule, Verdict
from .rules import BY_ID, RULES

ACKNOWLEDGE = "uv:acknowledge"
"""The metadata type of our acknowledgement: ``{"id": "<rule id>", "reason": "<at least 10 characters>"}``."""

CHECKED = "uv:policy"
"""The metadata type the checks write on each function they judged: each rule's result."""

MIN_REASON = 10
_CDK_ACKNOWLEDGED = "aws:cdk:acknowledged-rules"  # Validations.ACKNOWLEDGED_RULES_METADATA_KEY
_CDK_ANNOTATION_NAMESPACE = "Annotation::"  # how Validations.acknowledge qualifies an annotation's id
PLUGIN_NAME = "cdk-uv-aspect"  # as a validation plugin; the CDK qualifies its rule ids with it

Status = Literal["passed", "failed", "acknowledged", "not applicable"]


@dataclass(frozen=True)
class Outcome:
    """One rule's verdict on one function, after acknowledgements."""

    rule: Rule
    result: Verdict
    crashed: bool = False
    acknowledged: str | None = None  # the reason
    acknowledged_by: str | None = None  # "cdk-uv-aspect" or "cdk" (Annotations.acknowledge_warning)

    @property
    def level(self) -> Level | None:
        if isinstance(self.result, NonCompliant):
            return self.result.level or self.rule.severity
        return None

    @property
    def status(self) -> Status:
        if self.acknowledged is not None:
            return "acknowledged"
        if isinstance(self.result, NonCompliant):
            return "failed"
        return "passed" if isinstance(self.result, Compliant) else "not applicable"

    def as_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {"result": self.status}
        if isinstance(self.result, NonCompliant):
            row.update(level=self.level, message=self.result.message)
        elif isinstance(self.result, NotApplicable):
            row["reason"] = self.result.reason
        elif self.result.note:
            row["note"] = self.result.note
        if self.crashed:
            row["crashed"] = True
        if self.acknowledged is not None:
            row.update(reason=self.acknowledged, acknowledgedBy=self.acknowledged_by)
        return row


def judge(facts: FunctionFacts, options: PolicyOptions, rules: Iterable[Rule] = RULES) -> list[Outcome]:
    """Every rule's result for ``facts``. A rule that raises is a finding of that rule, at its severity:
    the gate never opens because a check could not run."""
    outcomes = []
    for rule in rules:
        try:
            outcomes.append(Outcome(rule, rule.check(facts, options)))
        except Exception as exc:  # a bug in a rule: a finding of that rule, never a crash nor a pass
            message = (
                f"the rule could not run ({type(exc).__name__}: {exc}); this is a bug in "
                "cdk-uv-aspect, please report it (acknowledge the rule on this function to go on meanwhile)"
            )
            outcomes.append(Outcome(rule, NonCompliant(message), crashed=True))
    return outcomes


def acknowledgement_problems(path: str, entries: Iterable[Any]) -> list[str]:
    """What is wrong with the acknowledgements in a construct's metadata (raw metadata included)."""
    problems = []
    for entry in entries:
        if entry.type == ACKNOWLEDGE:
            problem = _ack_problem(entry.data)
            if problem:
                problems.append(f"{path or '(the app)'}: {problem}")
    return problems


def acknowledgements(lineage: Iterable[Iterable[Any]]) -> dict[str, tuple[str, str]]:
    """Rule id -> (reason, by whom), from the metadata of a construct and its ancestors, the root first:
    the innermost acknowledgement wins.

    Ours (``UvPolicyChecks.acknowledge``) and the CDK's ``Validations.of(x).acknowledge(...)``, which
    records ``{"Annotation::<rule id>": reason}`` (or ``cdk-uv-aspect::<rule id>``, the id the CLI
    shows for the plugin's findings) as metadata, count alike.
    """
    found: dict[str, tuple[str, str]] = {}
    for entries in lineage:
        for entry in entries:
            if entry.type == ACKNOWLEDGE and _ack_problem(entry.data) is None:
                found[entry.data["id"]] = (entry.data["reason"].strip(), "cdk-uv-aspect")
            elif entry.type == _CDK_ACKNOWLEDGED and isinstance(entry.data, Mapping):
                for qualified, reason in entry.data.items():
                    rule_id = str(qualified).rpartition("::")[2]
                    if str(qualified) not in (
                        rule_id,
                        f"{_CDK_ANNOTATION_NAMESPACE}{rule_id}",
                        f"{PLUGIN_NAME}::{rule_id}",
                    ):
                        continue
                    if rule_id in BY_ID:
                        found[rule_id] = (str(reason), "cdk")
    return found


def _ack_problem(data: Any) -> str | None:
    if not isinstance(data, Mapping) or not isinstance(data.get("id"), str):
        return f"an acknowledgement needs a rule id and a reason, got {data!r}"
    if data["id"] not in BY_ID:
        return f"acknowledgement of unknown rule {data['id']!r} (rules: {', '.join(BY_ID)})"
    reason = data.get("reason")
    if not isinstance(reason, str) or len(reason.strip()) < MIN_REASON:
        return f"the acknowledgement of {data['id']} needs a reason of at least {MIN_REASON} characters, got {reason!r}"
    return None


def describe(facts: FunctionFacts, outcome: Outcome, *, fix: bool = True) -> str:
    """A finding as a user reads it: rule id, problem, package, target, and the fix."""
    assert isinstance(outcome.result, NonCompliant)
    context = f"package {facts.package or 'none'}, target {facts.target or 'unknown'}"
    text = f"[{outcome.rule.id}] {outcome.result.message} ({context})"
    return f"{text}. Fix: {outcome.rule.fix}" if fix else text


def apply(
    owner: IConstruct,
    facts: FunctionFacts,
    outcomes: list[Outcome],
    acks: Mapping[str, tuple[str, str]],
    *,
    annotate: bool = True,
) -> list[Outcome]:
    """Apply acknowledgements; annotate ``owner`` with each finding or acknowledgement (unless
    ``annotate`` is False, for the validation plugin, which runs after annotations are written)."""
    final = []
    for outcome in outcomes:
        result = outcome.result
        if not isinstance(result, NonCompliant):
            final.append(outcome)
            continue
        rule = outcome.rule
        text = describe(facts, outcome)
        if rule.id in acks:
            reason, by = acks[rule.id]
            if annotate:
                add_info(owner, f"[{rule.id}] acknowledged: {reason}. The finding: {result.message}")
            final.append(Outcome(rule, result, outcome.crashed, reason, by))
        elif not annotate:
            final.append(outcome)
        elif outcome.level == "error":
            add_error(owner, text)
            final.append(outcome)
        else:
            # The CDK's own acknowledgement (Annotations.acknowledge_warning) drops the warning silently.
            if add_warning(owner, rule.id, text):
                final.append(outcome)
            else:
                final.append(
                    Outcome(rule, result, outcome.crashed, "acknowledged with Annotations.acknowledge_warning", "cdk")
                )
    if annotate:
        owner.node.add_metadata(CHECKED, {o.rule.id: o.status for o in final})
    return final


def report_row(facts: FunctionFacts, outcomes: list[Outcome]) -> dict[str, Any]:
    return {
        "path": facts.path,
        "kind": facts.kind,
        "runtime": facts.runtime,
        "architecture": facts.architecture,
        "handler": facts.handler,
        "package": facts.package,
        "target": facts.target,
        "cdkInternal": facts.internal is not None,
        "rules": {o.rule.id: o.as_json() for o in outcomes},
    }


def report(rows: Iterable[dict[str, Any]], library_version: str) -> dict[str, Any]:
    """The JSON report: the rules, every function with each rule's result, and the totals."""
    functions = sorted(rows, key=lambda r: r["path"])
    results = [r for f in functions for r in f["rules"].values()]
    return {
        "tool": f"cdk-uv-aspect {library_version}",
        "rules": [
            {"id": r.id, "severity": r.severity, "title": r.title, "explanation": r.explanation, "fix": r.fix}
            for r in RULES
        ],
        "summary": {
            "functions": len(functions),
            "errors": sum(r["result"] == "failed" and r.get("level") == "error" for r in results),
            "warnings": sum(r["result"] == "failed" and r.get("level") == "warning" for r in results),
            "acknowledged": sum(r["result"] == "acknowledged" for r in results),
        },
        "functions": functions,
    }
