"""UvPolicyChecks: the aspect that registers the checks (the judging happens in a construct validation),
and the same checks as a CDK policy validation plugin."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aws_cdk
import jsii
from aws_cdk import IAspect, Stage
from constructs import IConstruct, IValidation

from .._errors import PolicyError
from .._files import atomic_write
from .._state import jsii_ref
from .._version import LIBRARY_VERSION
from . import engine, plugin
from .facts import FunctionFacts, facts_of
from .options import PolicyOptions
from .rule import NonCompliant, NotApplicable
from .rules import BY_ID, RULES, uv_built
from .tree import Tree

if TYPE_CHECKING:
    from aws_cdk import IPolicyValidationContext, PolicyValidationPluginReport

# The policy validation plugin interface came in aws-cdk-lib 2.251 (older releases have its beta); the
# construct tree the checks read reaches plugins from 2.258 on. Where the plugin form can't run, it fails
# the synth saying to add the checks as an aspect, which works on every release.
_PLUGIN = aws_cdk.IPolicyValidationPlugin if plugin.INTERFACE_READY else aws_cdk.IPolicyValidationPluginBeta1


@jsii.implements(IAspect, _PLUGIN)
class UvPolicyChecks:
    """Checks every Lambda function of the app: uv-built, and its asset would import on Lambda.

    Add it next to the bundling aspect, in any order and at any priority: it only registers a
    validation, which runs after every aspect, so it judges what the bundling aspect produced::

        Aspects.of(app).add(UvBundlingAspect())
        Aspects.of(app).add(UvPolicyChecks())

    Errors fail ``cdk synth``; warnings fail it with ``--strict``. Each function's results go to
    ``uv-policy-report.json`` in the cloud assembly. Like every aspect it does not cross Stage
    boundaries: add it in each Stage too. Options come as a :class:`PolicyOptions` or as its fields:
    ``UvPolicyChecks(include_cdk_internal=True, size_warning_mb=150)``.

    It is also a CDK policy validation plugin, reporting into the CDK's validation report instead of
    annotations: ``Validations.of(app).add_plugins(UvPolicyChecks())`` (aws-cdk-lib 2.258 and newer;
    on older releases it fails the synth saying so).
    """

    def __init__(self, options: PolicyOptions | None = None, /, **fields: Any) -> None:
        if options is not None and fields:
            raise TypeError("pass either a PolicyOptions or its fields as keyword arguments, not both")
        self.options = options or PolicyOptions(**fields)
        self._scopes: list[str] = []  # paths of the constructs holding a validation
        self._rows: dict[str, dict[str, dict[str, Any]]] = {}  # report file -> function path -> row
        self._apps: dict[str, str] = {}  # report file -> the app (jsii ref) a plugin run wrote it for

    @staticmethod
    def acknowledge(scope: IConstruct, rule_id: str, reason: str) -> None:
        """Accept a rule's finding for ``scope`` and every construct below it, with a reason.

        The finding shows as an info message with the reason, and as "acknowledged" in the report::

            UvPolicyChecks.acknowledge(legacy_stack, "uv-built", "legacy functions, moved in Q3")
        """
        problem = engine._ack_problem({"id": rule_id, "reason": reason})
        if problem:
            raise PolicyError(
                problem,
                constructs=[scope.node.path],
                fix=f"name one of the rules ({', '.join(BY_ID)}) and say why in at least "
                f"{engine.MIN_REASON} characters",
            )
        scope.node.add_metadata(engine.ACKNOWLEDGE, {"id": rule_id, "reason": reason.strip()})

    # --- as an aspect ---------------------------------------------------------------------------

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
                checked = any(e.type == engine.CHECKED for e in tree.metadata(owner_path))
                if not checked and self._would_judge(tree, owner, cfn, owner_path, cfn_path):
                    unchecked.append(owner_path)
                continue
            facts, final = self._run(tree, owner, cfn, owner_path, cfn_path, annotate=True)
            rows[facts.path] = engine.report_row(facts, final)
        problems = self._acknowledgement_problems(tree)
        if unchecked:
            problems.append(
                "cdk-uv-aspect: UvPolicyChecks did not reach the functions "
                f"{', '.join(sorted(unchecked))}: aspects do not cross Stage boundaries. Add the checks "
                "inside each Stage as well, e.g. in your Stage's constructor: "
                "Aspects.of(self).add(UvPolicyChecks())"
            )
        if self.options.report and stage is not None:
            self._write_report(Path(stage.outdir) / self.options.report, rows)
        return problems

    # --- as a policy validation plugin (runs after synthesis, on the stacks the CDK hands it) ------

    @property
    def name(self) -> str:
        return engine.PLUGIN_NAME

    @property
    def version(self) -> str:
        return LIBRARY_VERSION

    @property
    def rule_ids(self) -> list[str]:
        return [rule.id for rule in RULES]

    def validate(self, context: IPolicyValidationContext) -> PolicyValidationPluginReport:
        # Never raises, and fails the synth where the CDK would not: see _policy/plugin.py.
        report: PolicyValidationPluginReport = plugin.validate(context, self._judge_plugin)
        return report

    def _judge_plugin(self, app: IConstruct, template_paths: list[str]) -> tuple[bool, list[Any]]:
        """Every function in the stacks whose templates the CDK handed over: (success, violations)."""
        tree = Tree(app)
        stacks = tree.stacks_of(template_paths)
        violations = [
            plugin.violation("acknowledgement", "error", problem, None, None)
            for problem in self._acknowledgement_problems(tree)
        ]
        rows = {}
        for owner, cfn, owner_path, cfn_path in tree.functions:
            if not any(cfn_path.startswith(stack + "/") for stack in stacks):
                continue
            facts, final = self._run(tree, owner, cfn, owner_path, cfn_path, annotate=False)
            rows[facts.path] = engine.report_row(facts, final)
            violations += [
                plugin.violation(
                    o.rule.id,
                    str(o.level),
                    f"{engine.describe(facts, o, fix=False)}. {o.rule.explanation}",
                    o.rule.fix,
                    cfn_path,
                )
                for o in final
                if o.status == "failed"
            ]
        if self.options.report and isinstance(app, Stage):
            self._write_report(Path(app.outdir) / self.options.report, rows, app=jsii_ref(app))
        return not any(v.severity == "error" for v in violations), violations

    # --- shared -------------------------------------------------------------------------------

    def _run(
        self, tree: Tree, owner: IConstruct, cfn: Any, owner_path: str, cfn_path: str, *, annotate: bool
    ) -> tuple[FunctionFacts, list[engine.Outcome]]:
        try:
            facts = facts_of(owner, cfn, tree, owner_path, cfn_path, budget=self.options.init_budget_ms)
            outcomes = engine.judge(facts, self.options)
        except Exception as exc:  # unreadable facts: every rule reports it at its severity (no gate opens)
            facts = FunctionFacts(path=owner_path, kind="unknown", runtime=None, architecture="unknown", handler=None)
            crashed = NonCompliant(f"the function's facts could not be read ({type(exc).__name__}: {exc})")
            outcomes = [engine.Outcome(rule, crashed, crashed=True) for rule in RULES]
        # The function and the constructs above it (for an L2, not its CfnFunction: one read less).
        acks = engine.acknowledgements(tree.metadata(p) for p in tree.lineage(owner_path))
        return facts, engine.apply(owner, facts, outcomes, acks, annotate=annotate)

    def _would_judge(self, tree: Tree, owner: IConstruct, cfn: Any, owner_path: str, cfn_path: str) -> bool:
        """Whether the checks apply to this function at all (a Node function or the CDK's own do not)."""
        try:
            facts = facts_of(owner, cfn, tree, owner_path, cfn_path)
            return not isinstance(uv_built.RULE.check(facts, self.options), NotApplicable)
        except Exception:
            return True

    @staticmethod
    def _acknowledgement_problems(tree: Tree) -> list[str]:
        # Checked where they can apply: on functions and the constructs above them.
        return [
            f"cdk-uv-aspect: {problem}"
            for path, entries in tree.read().items()
            for problem in engine.acknowledgement_problems(path, entries)
        ]

    def _write_report(self, path: Path, rows: dict[str, dict[str, Any]], *, app: str | None = None) -> None:
        """``app``: the plugin form's app, whose several runs in one synth (one per environment on some
        releases) rewrite the report they wrote."""
        # Several scopes of one Stage (the aspect added to two stacks) share one report file.
        merged = self._rows.setdefault(str(path), {})
        merged.update(rows)
        text = json.dumps(engine.report(merged.values(), LIBRARY_VERSION), indent=2) + "\n"
        if app is not None and self._apps.get(str(path)) != app and _differs(path, text):
            # aws-cdk-lib 2.258 to 2.273 fail the synth when a validation plugin changes a file that was
            # in the cloud assembly before it ran (later releases when the App asks them to): the report
            # of an earlier synth into this folder is replaced once the app is done.
            plugin.write_at_exit(path, text)
            return
        if app is not None:
            self._apps[str(path)] = app
        path.parent.mkdir(parents=True, exist_ok=True)
        # The name is a plain file name (PolicyOptions checks it), so the report stays in the assembly;
        # the file is replaced by a rename, so a link found at its place is replaced, never followed.
        atomic_write(path, text)


def _differs(path: Path, text: str) -> bool:
    """Whether a file (or a link) other than ``text`` is at ``path``."""
    try:
        return path.is_symlink() or (path.exists() and path.read_text() != text)
    except (OSError, UnicodeDecodeError):
        return True


@jsii.implements(IValidation)
class _Validation:
    def __init__(self, checks: UvPolicyChecks, scope: IConstruct) -> None:
        self._checks = checks
        self._scope = scope

    def validate(self) -> list[str]:
        return self._checks._judge(self._scope)
