"""UvBundlingAspect: find marked functions, build their packages (in parallel), swap their code."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import traceback
import typing
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import Annotations, IAspect, Stack, Stage, Token
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_lambda as lambda_
from constructs import IConstruct, IValidation, Node

from . import _cache, _layer, _state
from ._build import BuildRequest, Built, build, progress_line
from ._errors import (
    CodeError,
    MarkerError,
    TargetError,
    UnexpectedError,
    UvError,
    WorkspaceError,
    debugging,
    report_cleanly,
)
from ._handler import Missing, find_handler
from ._image import ImageSpec, image_context, image_spec, is_image_function
from ._image import _command as command_of
from ._lambda import EDGE_ARCHITECTURE, EDGE_RUNTIMES
from ._marker import MARKER, Marker, markers_of
from ._options import UvOptions
from ._placeholder import failed, is_swapped
from ._runner import Runner, cores, interruptible
from ._state import jsii_ref
from ._swap import ZipAsset, swap_image, swap_zip
from ._target import Target, target_of
from ._workspace import Package, Workspace, app_folder


@dataclass(frozen=True)
class _Planned:
    """A marked function, read once: every jsii read is a round trip to node."""

    function: lambda_.Function
    node: Node
    stack_ref: str  # the jsii ref of its stack: the functions of one stack share one asset per build
    request: BuildRequest
    image: ImageSpec | None
    handler: str | None  # None: not known at synthesis, or in an image this library does not write
    layer: bool = False  # its third-party dependencies go to a layer (UvOptions.dependencies_layer)


@dataclass
class _Failure:
    """An error to report, on the construct where the CDK shows it, for the functions it stopped."""

    error: UvError
    where: Node
    functions: list[lambda_.Function] = field(default_factory=list)


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
        self._workspace: Workspace | None = None
        self._built: dict[BuildRequest, Built] = {}
        self._scopes: list[IConstruct] = []
        # Keyed by jsii ref (see jsii_ref), as every read through jsii is a round trip to node:
        self._planned: dict[str, _Planned] = {}  # function -> its plan, until it is swapped
        self._assets: dict[tuple[str, BuildRequest, bool], ZipAsset] = {}  # (stack, build, split) -> its asset
        self._layers = _layer.DependencyLayers()  # the layers of functions' dependencies, made once per stack
        self._read: dict[str, Any] = {}  # Runtime or Architecture -> what was read of it
        self._pruned = False
        self._failures: list[_Failure] = []  # found during this visit, reported at its end
        self._failed: set[BuildRequest] = set()
        self._halted = False  # a function could not even be planned: build nothing, report it fast
        self._handlers: dict[tuple[Path, str], Missing | None] = {}
        self._announced = False

    # --- the walk -------------------------------------------------------------------------------

    def visit(self, node: IConstruct) -> None:
        try:
            self._visit(node)
        finally:
            self._report()

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
            found = _find_marked(constructs)
            layers = [
                _layer.plan_layer(layer, markers, self.options, self._workspace_for())
                for layer, markers in _layer.find_marked_layers(constructs)
                if jsii_ref(layer) not in nested and Stack.of(layer).bundling_required
            ]
        except UvError as exc:
            self._halted = True
            self._fail(exc, scope.node, [], cause=exc)
            return
        wanted: dict[BuildRequest, list[_Planned | _layer.PlannedLayer]] = {}
        missed: list[Node] = []
        outside: list[_Planned] = []  # functions the walk won't reach (an EdgeFunction's, in its own stack)
        for ref, marked in found.items():
            function, node = marked.function, marked.function.node
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
                node.add_metadata(MARKER, _one_marker(node, marked.markers))
            if marked.wrapped and not _below(node.path, scope.node.path):
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
            self._failures.append(_Failure(missed_error, scope.node))
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
            _layer.swap_layer(planned, _layer.build_layer(planned, self._built, self._runner))
        except UvError as exc:
            request = planned.requests[0]
            error = exc.with_constructs([planned.node.path], package=request.package, target=request.target)
            self._fail(error, planned.node, [], cause=exc)

    def _plan_or_fail(
        self, function: lambda_.Function, node: Node, markers: list[Any], stack: str, *, edge: bool = False
    ) -> _Planned | None:
        try:
            return self._plan(function, node, _one_marker(node, markers), stack, edge=edge)
        except UvError as exc:
            # Nothing is built then: the synth fails anyway, so it fails in seconds, not after the builds.
            self._halted = True
            self._fail(exc, node, [function], cause=exc)
            return None

    def _plan(self, function: lambda_.Function, node: Node, data: Any, stack: str, *, edge: bool = False) -> _Planned:
        """What to build for a marked function: its package, for its runtime and architecture."""
        target: Target | None = None
        handler: str | None = None
        try:
            runtime = self._read_once(function.runtime, lambda runtime: runtime.name)
            arch = self._read_once(function.architecture, lambda architecture: architecture.name)
            image = None
            if edge:
                _check_edge(runtime, arch)
            if not is_image_function(runtime):
                target = target_of(runtime, arch)
            marker = Marker.parse(data)
            if not is_image_function(runtime) and marker.image_settings:
                raise MarkerError(
                    f"the uv marker's {sorted(marker.image_settings)} apply to image functions only, and "
                    f"this function runs {runtime}",
                    fix="drop them from the marker (a zip function's Python version is its runtime), or make "
                    "the function a DockerImageFunction",
                )
            workspace = self._workspace_for()
            package = self._package_in(workspace, marker.package)
            if is_image_function(runtime):
                # The runtime is FROM_IMAGE: the Python version comes from the marker or the options.
                image = image_spec(function, arch, package, marker, self.options, workspace)
                target = image.target
                command = command_of(function) if image.source == "default" else []
                handler = command[0] if command else None  # a Dockerfile of the user's may add files
            else:
                cfn = node.default_child
                value = cfn.handler if isinstance(cfn, lambda_.CfnFunction) else None
                handler = value if isinstance(value, str) and not Token.is_unresolved(value) else None
            assert target is not None  # a zip function's, or an image's
            request = BuildRequest.create(
                workspace, package.name, target, self.options, extras=marker.extras, groups=marker.groups
            )
            layer = _layer.wants_layer(marker, self.options, image=image is not None, edge=edge)
        except UvError as exc:
            # The path is read only when needed; the package and target, where they were known.
            raise exc.with_constructs([node.path], package=_package_named(data), target=target) from None
        return _Planned(function, node, stack, request, image, handler, layer)

    def _read_once(self, value: Any, read: Callable[[Any], Any]) -> Any:
        # Functions share a few Runtime and Architecture objects: each is read through jsii once.
        ref = jsii_ref(value)
        if ref not in self._read:
            self._read[ref] = read(value)
        return self._read[ref]

    def _swap(self, planned: _Planned) -> None:
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
                swap_image(planned.function, built, planned.image, image_context(built, planned.image))
                return
            key = (planned.stack_ref, request, planned.layer)
            if planned.layer:
                built = self._layers.attach(planned.function, planned.node, planned.stack_ref, built, self._runner)
            self._assets[key] = swap_zip(planned.function, planned.node, built, self._assets.get(key))
        except UvError as exc:
            error = exc.with_constructs([planned.node.path], package=request.package, target=request.target)
            self._fail(error, planned.node, [planned.function], cause=exc)

    def _has_handler(self, planned: _Planned, built: Built) -> bool:
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
        request = planned.request
        cfn = planned.node.default_child
        if isinstance(cfn, lambda_.CfnFunction) and Stack.of(cfn).resolve(cfn.layers):
            # A layer can bring the handler's module (a wrapper such as Datadog's): say so, and build.
            Annotations.of(planned.function).add_warning_v2(
                "cdk-uv-aspect:handler-not-in-asset",
                f'{planned.node.path}: the handler "{missing.handler}" is not in the build of package '
                f"{request.package} ({missing.reason}); the function has layers, so it is left to them to bring it",
            )
            return True
        error = CodeError(
            f'the function\'s handler "{missing.handler}" is not in the build of package {request.package}: '
            f"{missing.reason} (Lambda would fail every invocation with Runtime.ImportModuleError)",
            package=request.package,
            target=request.target,
            constructs=[planned.node.path],
            fix="fix the function's handler (\"module.function\": the module's import path in the asset, "
            'e.g. "api.handler.main" for src/api/handler.py defining main), or mark the function with the '
            "package that has that module",
        )
        self._fail(error, planned.node, [planned.function])
        return False

    def _workspace_for(self) -> Workspace:
        if self._workspace is None:
            self._workspace = Workspace.find(self.options.workspace)
        return self._workspace

    def _how_found(self, workspace: Workspace) -> str:
        """How the workspace was chosen: for messages."""
        if self.options.workspace is not None:
            return "the one given as UvOptions(workspace=...)"
        cwd = Path.cwd().resolve()
        if cwd == workspace.root or cwd.is_relative_to(workspace.root):
            return f"the nearest uv.lock above the current directory {cwd}"
        return f"the nearest uv.lock above the app's folder {app_folder() or '?'}"

    def _package_in(self, workspace: Workspace, name: str) -> Package:
        try:
            return workspace.package(name)
        except WorkspaceError as exc:
            other = _workspace_with(name, workspace.root)
            if other is None:
                fix = (
                    f"{exc.fix}; or, if the package is in another uv workspace (a CDK app that is its own uv "
                    'project beside the Lambda code, say), point the aspect at it: UvBundlingAspect(workspace="<'
                    'the folder with its uv.lock>")'
                )
            else:
                fix = (
                    f"package {name!r} is in the uv workspace at {other}: point the aspect at it, "
                    f'UvBundlingAspect(workspace="{os.path.relpath(other)}") (a path relative to where the app runs)'
                )
            raise WorkspaceError(
                f"{exc.problem}; that workspace is {self._how_found(workspace)}", package=name, fix=fix
            ) from None

    def _announce(self) -> None:
        """Which workspace the builds come from, said once (``cdk synth`` from another folder picks another)."""
        if self._announced or self._workspace is None:
            return
        self._announced = True
        how = self._how_found(self._workspace)
        _say(
            f"cdk-uv-aspect: uv workspace {self._workspace.root}: {how} (UvBundlingAspect(workspace=...) picks another)"
        )

    # --- errors ---------------------------------------------------------------------------------

    def _fail(
        self, error: UvError, where: Node, functions: list[lambda_.Function], cause: BaseException | None = None
    ) -> None:
        if cause is not None and debugging():
            where_raised = "".join(traceback.format_exception(cause)).rstrip()
            error.details = f"{error.details}\n{where_raised}".strip()
            error.args = (error.render(),)
        self._failures.append(_Failure(error, where, functions))

    def _report(self) -> None:
        """Each error found during a visit as a validation error of its first construct: the CDK fails
        synthesis with it (``cdk synth`` and ``python app.py`` alike), and prints each once."""
        failures, self._failures = self._failures, []
        for failure in _merged(failures):
            for function in failure.functions:
                _state.FAILED.add(jsii_ref(function))
            failure.where.add_validation(_Refused(str(failure.error)))
        if failures:
            report_cleanly()

    # --- the builds -----------------------------------------------------------------------------

    def _build_all(self, wanted: dict[BuildRequest, list[_Planned | _layer.PlannedLayer]]) -> None:
        """Build every request in parallel; a failed one is reported for the functions that wanted it."""
        if not wanted:
            return
        self._announce()
        workers = max(1, min(len(wanted), cores()))
        # SIGINT/SIGTERM while building: every child's process group ends, the builds unwind (removing
        # their private folders) before the pool is left, then the process stops as the signal asks.
        with interruptible(), ThreadPoolExecutor(max_workers=workers) as pool:
            # Paths are read here, not in the workers: jsii is not thread-safe. Three name a build.
            paths = {request: [p.node.path for p in planned] for request, planned in wanted.items()}
            futures = {
                request: pool.submit(_build_and_say, request, self._runner, paths[request][:3], len(paths[request]))
                for request in wanted
            }
            for request, future in futures.items():
                try:
                    self._built[request] = future.result()
                except Exception as exc:  # each build's error, whatever its type, named and reported with the others
                    error = (
                        exc
                        if isinstance(exc, UvError)
                        else UnexpectedError.wrap(exc, package=request.package, target=request.target)
                    )
                    self._failed.add(request)
                    planned = wanted[request]
                    failure = error.with_constructs(paths[request])
                    functions = [p.function for p in planned if isinstance(p, _Planned)]
                    self._fail(failure, planned[0].node, functions, cause=exc)
        if not self._pruned and self.options.cache_days and any(not b.cached for b in self._built.values()):
            # Only after building something: the warm path stays free of it. Entries in use were touched.
            self._pruned = True
            with contextlib.suppress(OSError):  # best effort: a cache that can't be pruned now still works
                _cache.prune(self.options.cache_dir, self.options.cache_days)


@jsii.implements(IValidation)
class _Refused:
    """A validation that fails synthesis with one of our errors."""

    def __init__(self, message: str) -> None:
        self._message = message

    def validate(self) -> list[str]:
        return [self._message]


def _merged(failures: list[_Failure]) -> list[_Failure]:
    """One error for the functions that failed alike (no workspace, say), naming each of them."""
    groups: dict[tuple[Any, ...], _Failure] = {}
    for failure in failures:
        e = failure.error
        key = (type(e), e.problem, e.fix, e.details)
        if key not in groups:
            groups[key] = _Failure(e, failure.where, list(failure.functions))
            continue
        group = groups[key]
        known = group.error
        constructs = [*known.constructs, *(c for c in e.constructs if c not in known.constructs)]
        package = known.package if known.package == e.package else None
        target = known.target if known.target == e.target else None
        merged = known.with_constructs(constructs)
        merged.package, merged.target = package, target
        merged.args = (merged.render(),)
        group.error = merged
        group.functions += failure.functions
    return list(groups.values())


def _workspace_with(package: str, used: Path) -> Path | None:
    """Another uv workspace near ``used`` that has ``package``: beside it, above it, or below it.

    For the common layout of a CDK app that is its own uv project beside the Lambda code (``infra/`` and
    ``backend/``, each with a uv.lock): the aspect picked the app's workspace, and the package is next door.
    """
    folders = [used.parent, *sorted(used.parent.glob("*/")), *sorted(used.glob("*/"))]
    for folder in folders[:100]:
        if folder.resolve() == used or not (folder / "uv.lock").is_file():
            continue
        try:
            if package in Workspace.load(folder).packages:
                return folder.resolve()
        except UvError:
            continue
    return None


@dataclass
class _Marked:
    """A function to build, and every marker that names it: its own and its wrappers'."""

    function: lambda_.Function
    markers: list[tuple[str, Any]] = field(default_factory=list)  # (path of the marked construct, data)
    wrapped: bool = False  # found through a wrapper (SingletonFunction, EdgeFunction)
    own: bool = False  # the function carries a marker itself
    edge: bool = False  # behind a cloudfront.experimental.EdgeFunction: Lambda@Edge's limits apply


# Constructs that can carry a marker but can't be built: a marker there would be ignored, so it is
# refused. Only these types are read (a metadata read is a round trip to node, and costly).
_NOT_BUILDABLE = (lambda_.FunctionBase, Stack)


def _find_marked(constructs: list[IConstruct]) -> dict[str, _Marked]:
    """Every function to build under a scope, by jsii ref, with its markers; refuse markers that would be
    ignored. Wrappers the CDK ships (SingletonFunction, EdgeFunction) are built through their function."""
    found: dict[str, _Marked] = {}
    refused: list[str] = []
    for construct in constructs:
        if isinstance(construct, lambda_.Function):
            markers = markers_of(construct.node)
            if markers:
                entry = found.setdefault(jsii_ref(construct), _Marked(construct))
                entry.markers += [(construct.node.path, data) for data in markers]
                entry.own = True
        elif isinstance(construct, (lambda_.SingletonFunction, cloudfront.experimental.EdgeFunction)):
            edge = isinstance(construct, cloudfront.experimental.EdgeFunction)
            markers = markers_of(construct.node)
            if not markers and not edge:
                continue
            inner = _wrapped_function(construct)
            if inner is None:
                refused += [construct.node.path] if markers else []
                continue
            entry = found.setdefault(jsii_ref(inner), _Marked(inner))
            entry.markers += [(construct.node.path, data) for data in markers]
            entry.wrapped = entry.wrapped or bool(markers)
            entry.edge = entry.edge or edge
        elif isinstance(construct, _NOT_BUILDABLE) and markers_of(construct.node):
            refused.append(construct.node.path)
    if refused:
        raise MarkerError(
            "the uv marker is on constructs that are not Lambda functions the aspect can build (an Alias, a "
            "Version, a Stack...), so it would be ignored",
            constructs=refused,
            fix="put the marker on the lambda_.Function itself (for an Alias or a Version: on the function "
            "it points to, alias.version.lambda_); SingletonFunction and cloudfront.experimental.EdgeFunction "
            "may carry it themselves",
        )
    # An EdgeFunction's function with no marker anywhere is not ours to build.
    return {ref: entry for ref, entry in found.items() if entry.markers}


def _wrapped_function(construct: IConstruct) -> lambda_.Function | None:
    """The Function inside a SingletonFunction or an EdgeFunction."""
    if isinstance(construct, cloudfront.experimental.EdgeFunction):
        inner: Any = construct.lambda_
    else:
        # SingletonFunction keeps its function private; its permissions node is that function's node.
        node = typing.cast(lambda_.SingletonFunction, construct).permissions_node
        inner = node.scope.node.try_find_child(node.id) if node.scope is not None else None
    return inner if isinstance(inner, lambda_.Function) else None


def _one_marker(node: Node, markers: list[tuple[str, Any]] | list[Any]) -> Any:
    """The marker data of a function with one or more markers that agree; a MarkerError when they don't."""
    entries = [m if isinstance(m, tuple) else (node.path, m) for m in markers]
    if len(entries) == 1:
        return entries[0][1]  # parsed when planned, where the target is known for the error
    parsed: dict[Marker, list[str]] = {}
    for path, data in entries:
        try:
            parsed.setdefault(Marker.parse(data), []).append(path)
        except MarkerError as exc:
            raise exc.with_constructs([path]) from None
    if len(parsed) > 1:
        said = "; ".join(f"{', '.join(paths)}: {marker.as_data()!r}" for marker, paths in parsed.items())
        raise MarkerError(
            f"the function has {len(entries)} uv markers that disagree ({said}), and a function is built from "
            "one package",
            constructs=[node.path],
            package=None,
            fix="keep one marker (mark_package replaces nothing: remove the extra add_metadata call)",
        )
    return entries[0][1]


def _check_edge(runtime: str, arch: str) -> None:
    if arch != EDGE_ARCHITECTURE or runtime not in EDGE_RUNTIMES:
        supported = ", ".join(sorted(EDGE_RUNTIMES, key=lambda r: tuple(map(int, r[6:].split(".")))))
        raise TargetError(
            f"Lambda@Edge runs {EDGE_ARCHITECTURE} functions on {supported}; this EdgeFunction is {runtime} on {arch}",
            fix="give the EdgeFunction architecture=Architecture.X86_64 and one of those runtimes",
        )


def _below(path: str, scope: str) -> bool:
    return not scope or path.startswith(scope + "/")


def _package_named(data: Any) -> str | None:
    try:
        return Marker.parse(data).package
    except MarkerError:
        return None


def _build_and_say(request: BuildRequest, runner: Runner, shown: list[str], count: int) -> Built:
    built = build(request, runner, log=_say)
    # One line per build on stderr, as the CDK prints its own "Bundling asset <path>..." lines, written
    # when the build ends (builds run in parallel): what, for which functions, how long, from where.
    _say(progress_line(built, shown, count))
    return built


_SAYING = threading.Lock()


def _say(line: str) -> None:
    # One write per line, under a lock: lines of builds that end together never share a line.
    with _SAYING:
        sys.stderr.write(line.rstrip("\n") + "\n")
        sys.stderr.flush()
