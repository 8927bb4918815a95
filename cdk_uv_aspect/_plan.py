"""Planning: what to build for a marked function (its package, for its runtime and architecture), read once.

Every read through jsii is a round trip to node: functions share a few Runtime and Architecture objects,
each read once; the workspace is found once, and a package it does not have is looked for next door.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import Token
from aws_cdk import aws_lambda as lambda_
from constructs import Node

from . import _layer, _slim
from ._builds import say
from ._errors import MarkerError, TargetError, UvError, WorkspaceError
from ._image import ImageSpec, image_spec, is_image_function
from ._image import _command as command_of
from ._lambda import EDGE_ARCHITECTURE, EDGE_RUNTIMES
from ._marker import Marker
from ._options import UvOptions
from ._request import BuildRequest
from ._slimplan import Mode
from ._state import jsii_ref
from ._target import Target, target_of
from ._workspace import Package, Workspace, app_folder


@dataclass(frozen=True)
class Planned:
    """A marked function, read once: every jsii read is a round trip to node."""

    function: lambda_.Function
    node: Node
    stack_ref: str  # the jsii ref of its stack: the functions of one stack share one asset per build
    request: BuildRequest
    image: ImageSpec | None
    handler: str | None  # None: not known at synthesis, or in an image this library does not write
    layer: bool = False  # its third-party dependencies go to a layer (UvOptions.dependencies_layer)
    cfn: lambda_.CfnFunction | None = None  # its CfnFunction, read when planned (a zip function's)
    slim: Mode | None = None  # its asset is slimmed (UvOptions.slim)


class Planner:
    """Plans the marked functions of one aspect: the workspace found once, each Runtime and Architecture read once."""

    def __init__(self, options: UvOptions) -> None:
        self.options = options
        self.found: Workspace | None = None  # the workspace, once found
        self._read: dict[str, Any] = {}  # Runtime or Architecture -> what was read of it
        self._announced = False

    def plan(self, function: lambda_.Function, node: Node, data: Any, stack: str, *, edge: bool = False) -> Planned:
        """What to build for a marked function: its package, for its runtime and architecture."""
        target: Target | None = None
        handler: str | None = None
        cfn: lambda_.CfnFunction | None = None
        try:
            runtime = self._read_once(function.runtime, lambda runtime: runtime.name)
            arch = self._read_once(function.architecture, lambda architecture: architecture.name)
            image = None
            if edge:
                _check_edge(runtime, arch)
            if not is_image_function(runtime):
                target = target_of(runtime, arch, new_runtimes=dict(self.options.new_runtimes))
            marker = Marker.parse(data)
            if not is_image_function(runtime) and marker.image_settings:
                raise MarkerError(
                    f"the uv marker's {sorted(marker.image_settings)} apply to image functions only, and "
                    f"this function runs {runtime}",
                    fix="drop them from the marker (a zip function's Python version is its runtime), or make "
                    "the function a DockerImageFunction",
                )
            workspace = self.workspace()
            package = self._package_in(workspace, marker.package)
            if is_image_function(runtime):
                # The runtime is FROM_IMAGE: the Python version comes from the marker or the options.
                image = image_spec(function, arch, package, marker, self.options, workspace)
                target = image.target
                command = command_of(function) if image.source == "default" else []
                handler = command[0] if command else None  # a Dockerfile of the user's may add files
            else:
                child = node.default_child
                cfn = child if isinstance(child, lambda_.CfnFunction) else None
                value = cfn.handler if cfn is not None else None
                handler = value if isinstance(value, str) and not _unresolved(value) else None
            assert target is not None  # a zip function's, or an image's
            request = BuildRequest.create(
                workspace, package.name, target, self.options, extras=marker.extras, groups=marker.groups
            )
            layer = _layer.wants_layer(marker, self.options, image=image is not None, edge=edge)
            slim = _slim.wanted(marker.slim, self.options)
        except UvError as exc:
            # The path is read only when needed; the package and target, where they were known.
            raise exc.with_constructs([node.path], package=_package_named(data), target=target) from None
        return Planned(function, node, stack, request, image, handler, layer, cfn, slim)

    def _read_once(self, value: Any, read: Callable[[Any], Any]) -> Any:
        # Functions share a few Runtime and Architecture objects: each is read through jsii once.
        ref = jsii_ref(value)
        if ref not in self._read:
            self._read[ref] = read(value)
        return self._read[ref]

    def workspace(self) -> Workspace:
        if self.found is None:
            self.found = Workspace.find(self.options.workspace)
        return self.found

    def announce(self) -> None:
        """Which workspace the builds come from, said once (``cdk synth`` from another folder picks another)."""
        workspace = self.found
        if self._announced or workspace is None:
            return
        self._announced = True
        how = self.how_found(workspace)
        say(f"cdk-uv-aspect: uv workspace {workspace.root}: {how} (UvBundlingAspect(workspace=...) picks another)")

    def how_found(self, workspace: Workspace) -> str:
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
                f"{exc.problem}; that workspace is {self.how_found(workspace)}", package=name, fix=fix
            ) from None


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


def _check_edge(runtime: str, arch: str) -> None:
    if arch != EDGE_ARCHITECTURE or runtime not in EDGE_RUNTIMES:
        supported = ", ".join(sorted(EDGE_RUNTIMES, key=lambda r: tuple(map(int, r[6:].split(".")))))
        raise TargetError(
            f"Lambda@Edge runs {EDGE_ARCHITECTURE} functions on {supported}; this EdgeFunction is {runtime} on {arch}",
            fix="give the EdgeFunction architecture=Architecture.X86_64 and one of those runtimes",
        )


def _package_named(data: Any) -> str | None:
    try:
        return Marker.parse(data).package
    except MarkerError:
        return None


def _unresolved(value: str) -> bool:
    """``Token.is_unresolved`` for a string, asked of node only when the string can hold a token."""
    return ("${Token[" in value or "#{Token[" in value) and Token.is_unresolved(value)
