"""UvBundlingAspect: find marked functions, build their packages (in parallel), swap their code."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import jsii
from aws_cdk import IAspect, Stack, Stage
from aws_cdk import aws_lambda as lambda_
from constructs import IConstruct, Node

from . import _cache
from ._build import BuildRequest, Built, build, progress_line
from ._errors import BuildErrors, MarkerError, UnexpectedError, UvError
from ._image import ImageSpec, image_context, image_spec, is_image_function
from ._marker import Marker, marker_of
from ._options import UvOptions
from ._placeholder import is_swapped
from ._runner import Runner
from ._state import jsii_ref
from ._swap import ZipAsset, swap_image, swap_zip
from ._target import Target, target_of
from ._workspace import Workspace


@dataclass(frozen=True)
class _Planned:
    """A marked function, read once: every jsii read is a round trip to node."""

    function: lambda_.Function
    node: Node
    stack_ref: str  # the jsii ref of its stack: the functions of one stack share one asset per build
    request: BuildRequest
    image: ImageSpec | None


@jsii.implements(IAspect)
class UvBundlingAspect:
    """Builds every marked Lambda function's package with uv and swaps the function's code for it.

    A function is marked with a metadata entry ``uv`` naming its workspace package::

        fn.node.add_metadata("uv", "api")
        Aspects.of(app).add(UvBundlingAspect())

    Aspects do not cross Stage boundaries: add the aspect to each Stage too (``Aspects.of(stage)``).
    A marked function that no aspect reached fails synthesis instead of deploying unbuilt code.

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
        self._assets: dict[tuple[str, BuildRequest], ZipAsset] = {}  # (stack, build) -> its asset
        self._read: dict[str, Any] = {}  # Runtime or Architecture -> what was read of it
        self._pruned = False

    # --- the walk -------------------------------------------------------------------------------

    def visit(self, node: IConstruct) -> None:
        # The walk starts where the aspect was added (an App, Stage or Stack): prepare every build there.
        # Any other construct is handled on its own below, so a function is never missed.
        if isinstance(node, (Stage, Stack)) and not self._in_a_scope(node):
            self._scopes.append(node)
            self._prepare(node)
        elif isinstance(node, lambda_.Function):
            planned = self._planned.pop(jsii_ref(node), None)
            if planned is None and not is_swapped(node):
                # Not under a scope this aspect prepared: it was added to the function itself.
                data = marker_of(node.node)
                stack = Stack.of(node)
                if data is None or not stack.bundling_required:
                    return
                planned = self._plan(node, node.node, data, jsii_ref(stack))
                self._build_all({planned.request: [planned.node]})
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
        wanted: dict[BuildRequest, list[Node]] = {}
        missed: list[Node] = []
        for construct in constructs:
            if not isinstance(construct, lambda_.Function):
                continue
            node = construct.node
            data = marker_of(node)
            if data is None:
                continue
            ref = jsii_ref(construct)
            if ref in nested:
                # Nested stages are synthesized before their parent's aspects run: a marked function
                # there that is still unbuilt was reached by no aspect, and would deploy unbuilt code.
                if not is_swapped(construct):
                    missed.append(node)
                continue
            if not bundled[stack_of[ref]]:
                continue  # `cdk ls`, or a stack left out by `cdk deploy --exclusively`
            planned = self._planned[ref] = self._plan(construct, node, data, stack_of[ref])
            if planned.request not in self._built:
                wanted.setdefault(planned.request, []).append(node)
        if missed:
            raise UvError(
                "marked functions inside a nested Stage were not built: aspects do not cross Stage boundaries",
                constructs=[node.path for node in missed],
                fix="add the aspect inside each Stage as well, e.g. in your Stage's constructor: "
                "Aspects.of(self).add(UvBundlingAspect())",
            )
        self._build_all(wanted)

    def _plan(self, function: lambda_.Function, node: Node, data: Any, stack: str) -> _Planned:
        """What to build for a marked function: its package, for its runtime and architecture."""
        target: Target | None = None
        try:
            runtime = self._read_once(function.runtime, lambda runtime: runtime.name)
            arch = self._read_once(function.architecture, lambda architecture: architecture.name)
            image = None
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
            package = workspace.package(marker.package)
            if is_image_function(runtime):
                # The runtime is FROM_IMAGE: the Python version comes from the marker or the options.
                image = image_spec(function, arch, package, marker, self.options, workspace)
                target = image.target
            assert target is not None  # a zip function's, or an image's
        except UvError as exc:
            # The path is read only when needed; the package and target, where they were known.
            raise exc.with_constructs([node.path], package=_package_named(data), target=target) from None
        return _Planned(function, node, stack, BuildRequest(workspace, package.name, target, self.options), image)

    def _read_once(self, value: Any, read: Callable[[Any], Any]) -> Any:
        # Functions share a few Runtime and Architecture objects: each is read through jsii once.
        ref = jsii_ref(value)
        if ref not in self._read:
            self._read[ref] = read(value)
        return self._read[ref]

    def _swap(self, planned: _Planned) -> None:
        request = planned.request
        built = self._built.get(request) or self._build_all({request: [planned.node]})[request]
        if planned.image is not None:
            swap_image(planned.function, built, planned.image, image_context(built, planned.image))
            return
        key = (planned.stack_ref, request)
        self._assets[key] = swap_zip(planned.function, planned.node, built, self._assets.get(key))

    def _workspace_for(self) -> Workspace:
        if self._workspace is None:
            self._workspace = Workspace.find(self.options.workspace)
        return self._workspace

    # --- the builds -----------------------------------------------------------------------------

    def _build_all(self, wanted: dict[BuildRequest, list[Node]]) -> dict[BuildRequest, Built]:
        if not wanted:
            return self._built
        errors: list[UvError] = []
        workers = max(1, min(len(wanted), os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            # Paths are read here, not in the workers: jsii is not thread-safe. Three name a build.
            futures = {
                request: pool.submit(_build_and_say, request, self._runner, [n.path for n in nodes[:3]], len(nodes))
                for request, nodes in wanted.items()
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
                    errors.append(error.with_constructs([n.path for n in wanted[request]]))
        if not self._pruned and self.options.cache_days and any(not b.cached for b in self._built.values()):
            # Only after building something: the warm path stays free of it. Entries in use were touched.
            self._pruned = True
            _cache.prune(self.options.cache_dir, self.options.cache_days)
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise BuildErrors(errors)
        return self._built


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


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
