"""UvBundlingAspect: find marked functions, build their packages (in parallel), swap their code."""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jsii
from aws_cdk import IAspect, Stack, Stage
from aws_cdk import aws_lambda as lambda_
from constructs import IConstruct

from . import _cache
from ._build import BuildRequest, Built, build
from ._errors import BuildErrors, UvError
from ._image import ImageSpec, image_context, image_spec, is_image_function, refuse_image_keys
from ._marker import ASSET_ID, marker_of, package_of
from ._options import UvOptions
from ._swap import swap_image, swap_zip
from ._target import target_of
from ._workspace import Workspace


@jsii.implements(IAspect)
class UvBundlingAspect:
    """Builds every marked Lambda function's package with uv and swaps the function's code for it.

    A function is marked with a metadata entry ``uv`` naming its workspace package::

        fn.node.add_metadata("uv", "api")
        Aspects.of(app).add(UvBundlingAspect())

    Aspects do not cross Stage boundaries: add the aspect to each Stage too (``Aspects.of(stage)``).
    A marked function that no aspect reached fails synthesis instead of deploying unbuilt code.

    Options come as a :class:`UvOptions` or as its fields: ``UvBundlingAspect(bytecode=False)``.
    """

    def __init__(self, options: UvOptions | None = None, /, **fields: Any) -> None:
        if options is not None and fields:
            raise TypeError("pass either a UvOptions or its fields as keyword arguments, not both")
        self.options = options or UvOptions(**fields)
        self._workspace: Workspace | None = None
        self._built: dict[BuildRequest, Built] = {}
        self._scopes: list[IConstruct] = []
        self._images: dict[str, ImageSpec] = {}  # construct path -> image, for image functions
        # Requests worked out while preparing a scope, by function, so the walk does not ask jsii again
        # (each property read is a round trip to node). The function object is kept to make id() safe.
        self._planned: dict[int, tuple[lambda_.Function, BuildRequest]] = {}
        self._bundling: dict[int, tuple[Stack, bool]] = {}
        self._pruned = False

    # --- the walk -------------------------------------------------------------------------------

    def visit(self, node: IConstruct) -> None:
        # The walk starts where the aspect was added (an App, Stage or Stack): prepare every build there.
        # Any other construct is handled on its own below, so a function is never missed.
        if isinstance(node, (Stage, Stack)) and not self._in_a_scope(node):
            self._scopes.append(node)
            self._prepare(node)
        elif isinstance(node, lambda_.Function):
            planned = self._planned.pop(id(node), None)
            if planned is not None and planned[0] is node:
                request: BuildRequest | None = planned[1]  # prepared in this synth: not swapped yet
            elif node.node.try_find_child(ASSET_ID) is None:
                request = self._request(node)
            else:
                return
            if request is not None:
                built = self._built.get(request) or self._build_all({request: [node.node.path]})[request]
                image = self._images.get(node.node.path)
                if image is None:
                    swap_zip(node, built)
                else:
                    swap_image(node, built, image, image_context(built, image))

    def _in_a_scope(self, node: IConstruct) -> bool:
        if not self._scopes:
            return False
        return any(ancestor is scope for ancestor in node.node.scopes for scope in self._scopes)

    def _prepare(self, scope: IConstruct) -> None:
        """Build every marked function under ``scope`` at once, before the walk reaches them one by one."""
        stage = scope if isinstance(scope, Stage) else Stage.of(scope)
        wanted: dict[BuildRequest, list[str]] = {}
        missed: list[str] = []
        for construct in scope.node.find_all():
            if not isinstance(construct, lambda_.Function):
                continue
            data = marker_of(construct)
            if data is None:
                continue
            if Stage.of(construct) is not stage:
                # Nested stages are synthesized before their parent's aspects run: a marked function
                # there that is still unbuilt was reached by no aspect, and would deploy unbuilt code.
                if construct.node.try_find_child(ASSET_ID) is None:
                    missed.append(construct.node.path)
                continue
            request = self._request(construct, data)
            if request is None:
                continue
            self._planned[id(construct)] = (construct, request)
            if request not in self._built:
                wanted.setdefault(request, []).append(construct.node.path)
        if missed:
            raise UvError(
                "marked functions inside a nested Stage were not built: aspects do not cross Stage "
                "boundaries",
                constructs=missed,
                fix="add the aspect inside each Stage as well, e.g. in your Stage's constructor: "
                "Aspects.of(self).add(UvBundlingAspect())",
            )
        self._build_all(wanted)

    def _request(self, function: lambda_.Function, data: Any = None) -> BuildRequest | None:
        data = data if data is not None else marker_of(function)
        if data is None:
            return None
        where = function.node.path
        package = package_of(data, where=where)
        if not self._bundling_required(Stack.of(function)):
            return None  # `cdk ls`, or a stack left out by `cdk deploy --exclusively`
        runtime = function.runtime
        image = is_image_function(runtime)
        if not image:
            target = target_of(
                runtime.name, runtime.family == lambda_.RuntimeFamily.PYTHON, function.architecture.name,
                where=where,
            )
            refuse_image_keys(data, runtime.name, where)
        try:
            workspace = self._workspace_for()
            found = workspace.package(package, where=where)
        except UvError as exc:
            raise exc.with_constructs([where]) from None
        if image:
            # The runtime is FROM_IMAGE: the Python version comes from the marker or the options.
            spec = self._images[where] = image_spec(function, found, data, self.options, workspace)
            target = spec.target
        return BuildRequest(workspace, package, target, self.options)

    def _bundling_required(self, stack: Stack) -> bool:
        known = self._bundling.get(id(stack))
        if known is None or known[0] is not stack:
            known = self._bundling[id(stack)] = (stack, stack.bundling_required)
        return known[1]

    def _workspace_for(self) -> Workspace:
        if self._workspace is None:
            self._workspace = Workspace.find(self.options.workspace)
        return self._workspace

    # --- the builds -----------------------------------------------------------------------------

    def _build_all(self, wanted: dict[BuildRequest, list[str]]) -> dict[BuildRequest, Built]:
        if not wanted:
            return self._built
        errors: list[UvError] = []
        workers = max(1, min(len(wanted), os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {request: pool.submit(_build_and_say, request, wanted[request]) for request in wanted}
            for request, future in futures.items():
                try:
                    self._built[request] = future.result()
                except UvError as exc:
                    errors.append(exc.with_constructs(wanted[request]))
        if not self._pruned and self.options.cache_days and any(not b.cached for b in self._built.values()):
            # Only after building something: the warm path stays free of it. Entries in use were touched.
            self._pruned = True
            _cache.prune(self.options.cache_dir, self.options.cache_days)
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise BuildErrors(errors)
        return self._built


def _build_and_say(request: BuildRequest, constructs: list[str]) -> Built:
    built = build(request, log=_say)
    # One line per build on stderr, as the CDK prints its own "Bundling asset <path>..." lines, written
    # when the build ends (builds run in parallel): what, for which functions, how long, from where.
    _say(progress_line(built, constructs))
    return built


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def progress_line(built: Built, constructs: list[str] | None = None) -> str:
    """``Bundling uv package orders (python3.12-x86_64) for App/Orders... built in 2.1s``."""
    what = f"Bundling uv package {built.request.package} ({built.request.target.key})"
    if constructs:
        more = f" and {len(constructs) - 3} more" if len(constructs) > 3 else ""
        what += f" for {', '.join(constructs[:3])}{more}"
    how = "from cache" if built.cached else "built"
    return f"{what}... {how} in {built.seconds:.1f}s"
