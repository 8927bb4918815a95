"""Layers, the CDK side: a marked ``LayerVersion`` planned and built as a Python layer, and a function's
third-party dependencies put into a layer the aspect makes and attaches (``UvOptions(dependencies_layer=True)``).

The folders are derived from ordinary builds by ``_derive`` (no construct there); a marked layer's content is
swapped by ``_swap.swap_layer``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Node

from . import _slim
from ._build import Built
from ._builds import say
from ._derive import content_digest, layer_of, split
from ._errors import MarkerError, TargetError, UvError
from ._lambda import ARCHITECTURES, LAYER_FOLDER, LAYER_LIMIT
from ._marker import Marker
from ._options import UvOptions
from ._request import BuildRequest
from ._runner import Runner
from ._slimplan import Mode
from ._swap import record_build, staging
from ._target import Target, target_of
from ._workspace import Workspace

DEPENDENCIES_ID = "UvDependencies"  # the ids of the layers the aspect makes start with this


# --- deciding ---------------------------------------------------------------------------------------


def wants_layer(marker: Marker, options: UvOptions, *, image: bool, edge: bool) -> bool:
    """Whether a function's third-party dependencies go to a layer: its marker says, else the options.

    Image and Lambda@Edge functions can't have layers: the options' setting passes them by, a marker asking
    for it is refused."""
    wanted = marker.dependencies_layer if marker.dependencies_layer is not None else options.dependencies_layer
    if wanted and (image or edge) and marker.dependencies_layer:
        what = "an image function" if image else "a Lambda@Edge function"
        raise MarkerError(
            f"the uv marker asks for dependencies_layer, but {what} can't have layers",
            package=marker.package,
            fix='drop "dependencies_layer" from the marker: its dependencies stay in its '
            + ("image" if image else "zip"),
        )
    return wanted and not (image or edge)


# --- a marked LayerVersion --------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedLayer:
    """A marked ``LayerVersion``, and what to build for it: one request per architecture it lists."""

    layer: lambda_.LayerVersion
    node: Node
    requests: tuple[BuildRequest, ...]
    others: tuple[Target, ...]  # the runtimes it lists besides the one it is built for: its wheels must load there
    slim: Mode | None = None  # its folder is slimmed (UvOptions.slim, or its marker's)


def plan_layer(
    layer: lambda_.LayerVersion, markers: list[Any], options: UvOptions, workspace: Workspace
) -> PlannedLayer:
    """What to build for a marked layer: its package for its compatible runtimes and architectures."""
    node = layer.node
    package = None
    try:
        if len({json.dumps(m, sort_keys=True, default=str) for m in markers}) > 1:
            raise MarkerError(
                f"the layer has {len(markers)} uv markers that disagree, and a layer is built from one package",
                fix="keep one marker on the layer",
            )
        marker = Marker.parse(markers[0])
        package = marker.package
        extra = [k for k in ("dockerfile", "build_args", "base_digest") if getattr(marker, k)]
        extra += [k for k in ("dependencies_layer", "init_budget_ms") if getattr(marker, k) is not None]
        if extra:
            raise MarkerError(
                f"a layer's uv marker takes the package, its extras and groups, and python; it has {', '.join(extra)}",
                package=package,
                fix='keep {"package": ..., "extras": [...], "groups": [...], "python": "3.12"} on a layer',
            )
        runtimes = [r.name for r in layer.compatible_runtimes or []]
        cfn = node.default_child
        assert isinstance(cfn, lambda_.CfnLayerVersion)
        archs = list(cfn.compatible_architectures or []) or ["x86_64"]  # Lambda's default
        new_runtimes = dict(options.new_runtimes)
        targets = _layer_targets(runtimes, archs, marker.python, package, new_runtimes)
        found = workspace.package(package)
        requests = tuple(
            BuildRequest.create(workspace, found.name, t, options, extras=marker.extras, groups=marker.groups)
            for t in targets
        )
        chosen = (targets[0].python, targets[0].os)
        listed = [target_of(r, a, new_runtimes=new_runtimes) for r in runtimes for a in dict.fromkeys(archs)]
        others = tuple(t for t in listed if (t.python, t.os) != chosen)
        slim = _slim.wanted(marker.slim, options)
    except UvError as exc:
        raise exc.with_constructs([node.path], package=package) from None
    return PlannedLayer(layer, node, requests, others, slim)


def _layer_targets(
    runtimes: list[str], archs: list[str], python: str | None, package: str, new_runtimes: dict[str, str]
) -> list[Target]:
    """One target per architecture, for the one Python and Amazon Linux of the layer's runtimes (or ``python``)."""
    if not runtimes:
        raise TargetError(
            "the layer lists no compatible runtimes, so no Python version and Amazon Linux can be chosen for its "
            "wheels",
            package=package,
            fix="give the LayerVersion compatible_runtimes=[Runtime.PYTHON_3_12] (the runtimes of the functions "
            "using it)",
        )
    # each runtime checked: known (or declared), Python, not retired
    targets = [target_of(r, a, new_runtimes=new_runtimes) for r in runtimes for a in archs[:1]]
    for arch in archs:
        if arch not in ARCHITECTURES:
            target_of(runtimes[0], arch, new_runtimes=new_runtimes)  # the unknown architecture, refused by name
    spans = {(t.python, t.os.name) for t in targets}
    if python is not None:
        chosen = [t for t in targets if t.python == python]
        if not chosen:
            raise TargetError(
                f"the layer's marker names Python {python}, which none of its compatible runtimes "
                f"({', '.join(runtimes)}) runs",
                package=package,
                fix="name one of its runtimes' Python versions in the marker's python, or add that runtime",
            )
        first = chosen[0]
    elif len(spans) > 1:
        said = ", ".join(f"{t.runtime} (Python {t.python}, {t.os.name})" for t in targets)
        raise TargetError(
            f"the layer's compatible runtimes span several Python versions or Amazon Linux versions ({said}): "
            "wheels are chosen for one Python and one glibc, and compiled wheels load on that Python only",
            package=package,
            target=", ".join(runtimes),
            fix="make one layer per Python version, or name the one to build for in the marker: "
            'mark_package(layer, "<package>", python="3.12") (its wheels are then checked to load on every '
            "runtime listed)",
        )
    else:
        first = targets[0]
    return [dataclasses.replace(first, arch=ARCHITECTURES[a].name) for a in dict.fromkeys(archs)]


def build_layer(planned: PlannedLayer, builds: dict[BuildRequest, Built], runner: Runner) -> Built:
    """The layer folder of a marked layer, from its builds (see ``_derive.layer_of``)."""
    try:
        return layer_of(planned.requests, planned.others, builds, runner)
    except UvError as exc:
        raise exc.with_constructs([planned.node.path]) from None


# --- a function's dependencies in a layer ----------------------------------------------------------


@dataclass
class DependencyLayers:
    """The layers the aspect made, by stack, target and content: functions that share them share one."""

    made: dict[tuple[str, str, str], lambda_.LayerVersion] = field(default_factory=dict)
    splits: dict[tuple[Path, Mode | None], tuple[Built, Built | None]] = field(default_factory=dict)

    def attach(
        self, function: lambda_.Function, node: Node, stack_ref: str, built: Built, runner: Runner, slim: Mode | None
    ) -> Built:
        """Put ``built``'s third-party packages into a layer attached to ``function``; return its code's build
        (the workspace's packages only). A build with no third-party package is returned as it is (slimmed,
        with ``slim``); with ``slim``, the layer and the code are slimmed each (see ``_slim``)."""
        try:
            if (built.entry, slim) not in self.splits:
                self.splits[(built.entry, slim)] = self._split(built, runner, slim)
            code, layer = self.splits[(built.entry, slim)]
            if layer is None:
                return code
            digest = content_digest(layer)
            target = built.request.target
            key = (stack_ref, target.key, digest)
            made = self.made.get(key)
            if made is None:
                stack = Stack.of(function)
                with staging(stack):
                    made = lambda_.LayerVersion(
                        stack,
                        f"{DEPENDENCIES_ID}-{target.key}-{digest[:16]}",
                        code=lambda_.Code.from_asset(str(layer.asset_dir)),
                        compatible_runtimes=[function.runtime],
                        compatible_architectures=[function.architecture],
                        description=f"Third-party Python packages for {target.runtime} {target.arch} (cdk-uv-aspect)",
                    )
                asset = made.node.find_child("Code")
                assert isinstance(asset, s3_assets.Asset)
                record_build(made.node, layer, asset.asset_hash, None, asset=asset.node.path, layer=True)
                self.made[key] = made
            try:
                function.add_layers(made)
            except RuntimeError as exc:  # the CDK's own checks, through jsii: more than LAYER_LIMIT layers
                raise TargetError(
                    f"the layer of its dependencies can't be added to the function: {exc}",
                    fix=f"keep its dependencies in its zip (mark it with {{'dependencies_layer': False}}): Lambda "
                    f"allows {LAYER_LIMIT} layers per function",
                ) from None
        except UvError as exc:
            raise exc.with_constructs([node.path], package=built.request.package, target=built.request.target) from None
        return code

    @staticmethod
    def _split(built: Built, runner: Runner, slim: Mode | None) -> tuple[Built, Built | None]:
        code, layer = split(built, runner)
        if slim is None:
            return code, layer
        if layer is None:
            return _slim.slimmed(code, _slim.Slimming(slim), runner, log=say), None
        layer = _slim.slimmed(layer, _slim.Slimming(slim, layer=True), runner, log=say)
        beside = (layer.asset_dir / LAYER_FOLDER,)  # its code imports the layer's packages
        return _slim.slimmed(code, _slim.Slimming(slim, beside=beside), runner, log=say), layer
