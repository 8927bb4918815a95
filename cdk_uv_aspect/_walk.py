"""The walk: which constructs under a scope the aspect builds, read from the tree once.

Every marked ``lambda_.Function``, through ``SingletonFunction`` and ``cloudfront.experimental.EdgeFunction``
to the function they wrap, with every marker that names it; every marked ``LayerVersion``. A marker the
aspect can't honour (on an Alias, a Version, a Stack...) is refused, and markers that disagree too.
"""

from __future__ import annotations

import sys
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_lambda as lambda_
from constructs import IConstruct, Node

from ._errors import MarkerError
from ._marker import Marker, markers_of
from ._state import jsii_ref


@dataclass
class Marked:
    """A function to build, and every marker that names it: its own and its wrappers'."""

    function: lambda_.Function
    # (the marked construct's node, or its path, and the data): a path is read only when an error needs it
    markers: list[tuple[Node | str, Any]] = field(default_factory=list)
    node: Node | None = None  # the function's node, when it was read here
    wrapped: bool = False  # found through a wrapper (SingletonFunction, EdgeFunction)
    own: bool = False  # the function carries a marker itself
    edge: bool = False  # behind a cloudfront.experimental.EdgeFunction: Lambda@Edge's limits apply


# Constructs that can carry a marker but can't be built: a marker there would be ignored, so it is
# refused. Only these types are read (a metadata read is a round trip to node, and costly).
NOT_BUILDABLE = (lambda_.FunctionBase, Stack)


def edge_function_class() -> type | None:
    """``cloudfront.experimental.EdgeFunction``, when the app loaded it; else no construct can be one.

    Not imported here: aws_cloudfront is a large module that most apps never load, and loading it
    would add to every synth's time.
    """
    module = sys.modules.get("aws_cdk.aws_cloudfront.experimental")
    edge: type | None = getattr(module, "EdgeFunction", None)
    return edge


def find_marked(constructs: list[IConstruct]) -> dict[str, Marked]:
    """Every function to build under a scope, by jsii ref, with its markers; refuse markers that would be
    ignored. Wrappers the CDK ships (SingletonFunction, EdgeFunction) are built through their function."""
    found: dict[str, Marked] = {}
    refused: list[str] = []
    edge_class = edge_function_class()
    wrappers: tuple[type, ...] = (lambda_.SingletonFunction, edge_class) if edge_class else (lambda_.SingletonFunction,)
    for construct in constructs:
        if isinstance(construct, lambda_.Function):
            node = construct.node  # every read through jsii is a round trip to node: read once
            markers = markers_of(node)
            if markers:
                entry = found.setdefault(jsii_ref(construct), Marked(construct))
                entry.markers += [(node, data) for data in markers]
                entry.own = True
                entry.node = node
        elif isinstance(construct, wrappers):
            edge = edge_class is not None and isinstance(construct, edge_class)
            markers = markers_of(construct.node)
            if not markers and not edge:
                continue
            inner = _wrapped_function(construct)
            if inner is None:
                refused += [construct.node.path] if markers else []
                continue
            entry = found.setdefault(jsii_ref(inner), Marked(inner))
            entry.markers += [(construct.node.path, data) for data in markers]
            entry.wrapped = entry.wrapped or bool(markers)
            entry.edge = entry.edge or edge
        elif isinstance(construct, NOT_BUILDABLE) and markers_of(construct.node):
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
    edge_class = edge_function_class()
    if edge_class is not None and isinstance(construct, edge_class):
        inner: Any = typing.cast(Any, construct).lambda_
    else:
        # SingletonFunction keeps its function private; its permissions node is that function's node.
        node = typing.cast(lambda_.SingletonFunction, construct).permissions_node
        inner = node.scope.node.try_find_child(node.id) if node.scope is not None else None
    return inner if isinstance(inner, lambda_.Function) else None


def one_marker(node: Node, markers: list[tuple[Node | str, Any]] | list[Any]) -> Any:
    """The marker data of a function with one or more markers that agree; a MarkerError when they don't."""
    if len(markers) == 1:
        only = markers[0]
        return only[1] if isinstance(only, tuple) else only  # parsed when planned, where the target is known
    entries = [(_path(m[0]), m[1]) if isinstance(m, tuple) else (node.path, m) for m in markers]
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


def _path(where: Node | str) -> str:
    return where if isinstance(where, str) else where.path


def below(path: str, scope: str) -> bool:
    return not scope or path.startswith(scope + "/")


def find_marked_layers(constructs: Iterable[IConstruct]) -> list[tuple[lambda_.LayerVersion, list[Any]]]:
    """Every ``LayerVersion`` among ``constructs`` that carries a uv marker, with its markers' data."""
    found = []
    for construct in constructs:
        if isinstance(construct, lambda_.LayerVersion):
            markers = markers_of(construct.node)
            if markers:
                found.append((construct, markers))
    return found
