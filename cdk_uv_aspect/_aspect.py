"""UvBundlingAspect: find marked functions, build their packages (in parallel), swap their code.

The steps are each in their own module: which constructs to build (``_walk``), what to build for each
(``_plan``), the builds in parallel (``_builds``), the swap (``_swap``, ``_layer``), and the errors
reported as validation errors (``_validation``). This module orders them, as the walk reaches each scope
and each function. (A little longer than most modules, and one job: the order of the steps, read in one
place; each step is a call into its own module.)
"""

from __future__ import annotations

import contextlib
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import IAspect, Stack, Stage
from aws_cdk import aws_lambda as lambda_
from constructs import IConstruct, Node

from . import _layer, _prune, _state
from ._build import Built
from ._builds import build_all, say
from ._errors import UnexpectedError, UvError
from ._files import file_error
from ._handler import Missing, find_handler
from ._image import image_context
from ._marker import MARKER, markers_of
from ._options import UvOptions
from ._placeholder import failed, is_swapped
from ._plan import Planned, Planner
from ._request import BuildRequest
from ._runner import Runner
from ._signals import NodeGone
from ._slim import Slimming, slimmed
from ._slimplan import Mode
from ._state import jsii_ref
from ._swap import ZipAsset, swap_image, swap_layer, swap_zip
from ._validation import Failures, handler_not_built
from ._walk import below, find_marked, find_marked_layers, one_marker


@jsii.implements(IAspect)
class UvBundlingAspect:
    """Builds every marked Lambda function's package with uv and swaps the function's code for it.

    A function is marked with a metadata entry ``uv`` naming its workspace package::

        fn.node.add_metadata("uv", "api")
        Aspects.of(app).add(UvBundlingAspect())

    Aspects do not cross Stage boundaries: add the aspect to each Stage too (``Aspects.of(stage)``).
    A marked function that no aspect reached fails synthesis instead of deploying unbuilt code.

    What can't be built (a package not in the workspace, a handler the build does not have, a failed
    uv command) fails synthesis as a validation error of the function, each error once, naming the
    construct, package, target and fix; ``python app.py`` prints it without a traceback (set
    ``CDK_UV_DEBUG=1`` to see one).

    Options come as a :class:`UvOptions` or as its fields: ``UvBundlingAspect(bytecode=False)``.
    ``runner`` runs every subprocess (tests give a fake one to reach errors a real uv can't produce).
    """

    def __init__(self, options: UvOptions | None = None, /, *, runner: Runner | None = None, **fields: Any) -> None:
        if options is not None and fields:
            raise TypeError("pass either a UvOptions or its fields as keyword arguments, not both")
        self.options = options or UvOptions(**fields)
        self._runner = runner or Runner()
        self._planner = Planner(self.options)  # the workspace, found once, and what was read of functions
        self._built: dict[BuildRequest, Built] = {}
        self._scopes: list[IConstruct] = []
        # Keyed by jsii ref (see jsii_ref), as every read through jsii is a round trip to node:
        self._planned: dict[str, Planned] = {}  # function -> its plan, until it is swapped
        self._assets: dict[tuple[str, BuildRequest, bool, Mode | None], ZipAsset] = {}  # (stack, build, split, slim)
        self._layers = _layer.DependencyLayers()  # the layers of functions' dependencies, made once per stack
        self._pruned = False
        self._failures = Failures()  # found during this visit, reported at its end
        self._failed: set[BuildRequest] = set()
        self._halted = False  # a function could not even be planned: build nothing, report it fast
        self._handlers: dict[tuple[Path, str], Missing | None] = {}
        self._slims: dict[tuple[Path, Slimming], Built] = {}  # (build entry, slimming) -> its slimmed build

    # --- the walk -------------------------------------------------------------------------------

    def visit(self, node: IConstruct) -> None:
        gone = False
        try:
            self._visit(node)
        except NodeGone:
            gone = True  # every report is a call into node: nothing can be reported, the synth ends here
            raise
        finally:
            if not gone:
                self._failures.report()

    def _visit(self, node: IConstruct) -> None:
        # The walk starts where the aspect was added (an App, Stage or Stack): prepare every build there.
        # Any other construct is handled on its own below, so a function is never missed.
        if isinstance(node, (Stage, Stack)) and not self._in_a_scope(node):
            self._scopes.append(node)
            self._prepare(node)
        elif isinstance(node, lambda_.Function):
            planned = self._planned.pop(jsii_ref(node), None)
            if planned is None and not is_swapped(node) and not failed(node):
                # Not under a scope this aspect prepared: it was added to the function itself.
                markers = markers_of(node.node)
                stack = Stack.of(node)
                if not markers or not stack.bundling_required:
                    return
                planned = self._plan_or_fail(node, node.node, markers, jsii_ref(stack))
                if planned is None:
                    return
                # Added after the walk started (by another aspect, which aspect stabilization re-runs
                # this one for): a build of the same package and target made here serves it too.
                if planned.request not in self._built and planned.request not in self._failed:
                    self._build_all({planned.request: [planned]})
            # Another aspect on an enclosing scope (or on this one) may have swapped it first: keep its build.
            if planned is not None and not is_swapped(node):
                self._swap(planned)

    def _in_a_scope(self, node: IConstruct) -> bool:
        if not self._scopes:
            return False
        return any(ancestor is scope for ancestor in node.node.scopes for scope in self._scopes)

    def _prepare(self, scope: IConstruct) -> None:
        """Build every marked function under ``scope`` at once, before the walk reaches them one by one."""
        constructs = scope.node.find_all()
        scope_ref = jsii_ref(scope)
        # Which stack holds each construct, and which are inside a nested Stage: one read per Stack and
        # Stage, not per function. find_all lists parents first, so a nested stack overrides its parent.
        stack_of: dict[str, str] = {}
        bundled: dict[str, bool] = {}
        nested: set[str] = set()
        for construct in constructs:
            if isinstance(construct, Stack):
                stack = jsii_ref(construct)
                bundled[stack] = construct.bundling_required
                stack_of.update((jsii_ref(c), stack) for c in construct.node.find_all())
            elif isinstance(construct, Stage) and jsii_ref(construct) != scope_ref:
                nested.update(jsii_ref(c) for c in construct.node.find_all())
        try:
            found = find_marked(constructs)
            layers = [
                _layer.plan_layer(layer, markers, self.options, self._planner.workspace())
                for layer, markers in find_marked_layers(constructs)
                if jsii_ref(layer) not in nested and Stack.of(layer).bundling_required
            ]
        except UvError as exc:
            self._halted = True
            self._failures.add(exc, scope.node, [], cause=exc)
            return
        wanted: dict[BuildRequest, list[Planned | _layer.PlannedLayer]] = {}
        missed: list[Node] = []
        outside: list[Planned] = []  # functions the walk won't reach (an EdgeFunction's, in its own stack)
        for ref, marked in found.items():
            function, node = marked.function, marked.node or marked.function.node
            if ref in nested:
                # Nested stages are synthesized before their parent's aspects run: a marked function
                # there that is still unbuilt was reached by no aspect, and would deploy unbuilt code.
                if not is_swapped(function):
                    missed.append(node)
                continue
            if ref not in stack_of:  # a wrapper's function outside this scope (cross-region EdgeFunction)
                holder = Stack.of(function)
                stack_of[ref] = jsii_ref(holder)
                bundled.setdefault(stack_of[ref], holder.bundling_required)
            if not bundled[stack_of[ref]]:
                continue  # `cdk ls`, or a stack left out by `cdk deploy --exclusively`
            planned = self._plan_or_fail(function, node, marked.markers, stack_of[ref], edge=marked.edge)
            if planned is None:
                continue
            self._planned[ref] = planned
            if marked.wrapped and not marked.own:
                # Marked through its wrapper: the function carries the marker too, as SingletonFunction's
                # own add_metadata would have put it, for the policy checks and `cdk-uv report`.
                node.add_metadata(MARKER, one_marker(node, marked.markers))
            if marked.wrapped and not below(node.path, scope.node.path):
                outside.append(self._planned.pop(ref))
            if planned.request not in self._built:
                wanted.setdefault(planned.request, []).append(planned)
        if missed:
            # Reported on the scope: the nested Stage was synthesized already, and checks no more.
            missed_error = UvError(
                "marked functions inside a nested Stage were not built: aspects do not cross Stage boundaries",
                constructs=[node.path for node in missed],
                fix="add the aspect inside each Stage as well, e.g. in your Stage's constructor: "
                "Aspects.of(self).add(UvBundlingAspect())",
            )
            self._failures.add(missed_error, scope.node, [])
        for planned_layer in layers:
            for request in planned_layer.requests:
                if request not in self._built:
                    wanted.setdefault(request, []).append(planned_layer)
        if not self._halted:
            self._build_all(wanted)
            for planned_layer in layers:
                self._swap_layer(planned_layer)
            for planned in outside:
                self._swap(planned)

    def _swap_layer(self, planned: _layer.PlannedLayer) -> None:
        """A marked LayerVersion gets its build, unless one of its builds failed (reported already)."""
        if any(request not in self._built for request in planned.requests):
            return
        try:
            built = _layer.build_layer(planned, self._built, self._runner)
            if planned.slim:
                built = self._slimmed(built, Slimming(planned.slim, layer=True))
            swap_layer(planned.layer, planned.node, built)
        except (UvError, OSError, UnicodeError) as exc:
            request = planned.requests[0]
            known = exc if isinstance(exc, UvError) else file_error(exc, cache_dir=self.options.cache_dir)
            error = known.with_constructs([planned.node.path], package=request.package, target=request.target)
            self._failures.add(error, planned.node, [], cause=exc)

    def _plan_or_fail(
        self, function: lambda_.Function, node: Node, markers: list[Any], stack: str, *, edge: bool = False
    ) -> Planned | None:
        try:
            return self._planner.plan(function, node, one_marker(node, markers), stack, edge=edge)
        except UvError as exc:
            # Nothing is built then: the synth fails anyway, so it fails in seconds, not after the builds.
            self._halted = True
            self._failures.add(exc, node, [function], cause=exc)
            return None

    def _swap(self, planned: Planned) -> None:
        request = planned.request
        if self._halted or request in self._failed:
            # Reported already; a function left unbuilt because another could not be planned is not
            # reported again as "never built" by UvCode()'s check.
            _state.FAILED.add(jsii_ref(planned.function))
            return
        if request not in self._built:
            self._build_all({request: [planned]})
            if request not in self._built:
                return
        built = self._built[request]
        if not self._has_handler(planned, built):
            return
        try:
            if planned.image is not None:
                built = self._slimmed(built, Slimming(planned.slim)) if planned.slim else built
                swap_image(planned.function, built, planned.image, image_context(built, planned.image))
                return
            key = (planned.stack_ref, request, planned.layer, planned.slim)
            if planned.layer:
                built = self._layers.attach(
                    planned.function, planned.node, planned.stack_ref, built, self._runner, slim=planned.slim
                )
            elif planned.slim:
                built = self._slimmed(built, Slimming(planned.slim))
            self._assets[key] = swap_zip(planned.function, planned.node, built, self._assets.get(key), planned.cfn)
        except (UvError, OSError, UnicodeError) as exc:
            # A failure of the file system here is the build cache's: the cloud assembly's are ours already
            # (_swap.staging), named with their path.
            known = exc if isinstance(exc, UvError) else file_error(exc, cache_dir=self.options.cache_dir)
            error = known.with_constructs([planned.node.path], package=request.package, target=request.target)
            self._failures.add(error, planned.node, [planned.function], cause=exc)

    def _slimmed(self, built: Built, slimming: Slimming) -> Built:
        """``built`` slimmed (see ``_slim``), once per aspect: functions sharing a build share its slimmed folder."""
        key = (built.entry, slimming)
        if key not in self._slims:
            self._slims[key] = slimmed(built, slimming, self._runner, log=say)
        return self._slims[key]

    def _has_handler(self, planned: Planned, built: Built) -> bool:
        """Whether the build has the function's handler; refused (or a warning, with layers) when not."""
        if planned.handler is None:
            return True
        key = (built.asset_dir, planned.handler)
        if key not in self._handlers:
            found = find_handler(built.asset_dir, planned.handler, built.request.target.python)
            self._handlers[key] = found if isinstance(found, Missing) else None
        missing = self._handlers[key]
        if missing is None:
            return True
        error = handler_not_built(planned.function, planned.node, planned.request, missing)
        if error is None:  # said as a warning: a layer of the function may bring it
            return True
        self._failures.add(error, planned.node, [planned.function])
        return False

    # --- the builds -----------------------------------------------------------------------------

    def _build_all(self, wanted: dict[BuildRequest, list[Planned | _layer.PlannedLayer]]) -> None:
        """Build every request in parallel; a failed one is reported for the functions that wanted it."""
        if not wanted:
            return
        self._planner.announce()
        # Paths are read here, not in the build threads: jsii is not thread-safe. Only those a line or an
        # error shows: each read is a round trip to node.
        paths = {request: _Paths(planned) for request, planned in wanted.items()}
        for request, result in build_all(paths, self._runner).items():
            if isinstance(result, Built):
                self._built[request] = result
                continue
            error = (
                result
                if isinstance(result, UvError)
                else UnexpectedError.wrap(result, package=request.package, target=request.target)
            )
            self._failed.add(request)
            planned = wanted[request]
            failure = error.with_constructs(list(paths[request]))
            functions = [p.function for p in planned if isinstance(p, Planned)]
            self._failures.add(failure, planned[0].node, functions, cause=result)
        if not self._pruned and self.options.cache_days and any(not b.cached for b in self._built.values()):
            # Only after building something: the warm path stays free of it. Entries in use were touched.
            self._pruned = True
            with contextlib.suppress(OSError):  # best effort: a cache that can't be pruned now still works
                _prune.prune(self.options.cache_dir, self.options.cache_days)


class _Paths(Sequence[str]):
    """The construct paths of what wants a build, each read when first asked for."""

    def __init__(self, planned: Sequence[Planned | _layer.PlannedLayer]) -> None:
        self._planned = planned
        self._read: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self._planned)

    @typing.overload
    def __getitem__(self, index: int) -> str: ...
    @typing.overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        index = range(len(self))[index]
        if index not in self._read:
            self._read[index] = self._planned[index].node.path
        return self._read[index]
