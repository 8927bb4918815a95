"""Tree: the construct tree as the policy checks read it, once: the Lambda functions under a scope (each with
its L2 owner), the stacks, stages and layers, and the metadata of the constructs that matter to them."""

from __future__ import annotations

import os
from typing import Any

from aws_cdk import Stack, Stage
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_lambda as lambda_
from constructs import IConstruct


class Tree:
    """The Lambda functions under a scope, and the metadata of the constructs that matter to them.

    Every jsii read is a round trip to node, and metadata carries stack traces: a construct's metadata
    is read once, and only for functions and the constructs above them.
    """

    def __init__(self, scope: IConstruct) -> None:
        self._root = scope.node.root
        self._constructs: dict[str, IConstruct | None] = {"": self._root}
        self._metadata: dict[str, list[Any]] = {}
        self.stages: list[str] = []  # paths of the Stages nested below the scope
        self._bundling: dict[str, bool] = {}  # stack path -> Stack.bundling_required
        self._stacks: dict[str, Stack] = {}  # stack path -> the stack
        self.functions: list[tuple[IConstruct, lambda_.CfnFunction, str, str]] = []  # owner, cfn, their paths
        self.edge: set[str] = set()  # paths of the functions of EdgeFunctions
        self._layers: list[lambda_.CfnLayerVersion] = []
        self._layer_ids: dict[tuple[str, str], lambda_.CfnLayerVersion] | None = None  # (stack, logical id) ->
        scope_path = scope.node.path
        for construct in scope.node.find_all():
            if isinstance(construct, Stage):
                path = construct.node.path
                if path != scope_path:
                    self.stages.append(path)
            elif isinstance(construct, Stack):
                self._bundling[construct.node.path] = construct.bundling_required
                self._stacks[construct.node.path] = construct
            elif isinstance(construct, lambda_.CfnLayerVersion):
                self._layers.append(construct)
            elif isinstance(construct, cloudfront.experimental.EdgeFunction):
                self.edge.add(construct.lambda_.node.path)
            elif isinstance(construct, lambda_.CfnFunction):
                path = construct.node.path
                parent = construct.node.scope
                # The owner is the L2 Function when this is its default child (compared by path: jsii
                # gives a new Python proxy for each read of a construct made in JavaScript).
                default = parent.node.default_child if isinstance(parent, lambda_.Function) else None
                if parent is not None and default is not None and default.node.path == path:
                    owner_path = parent.node.path
                    self._constructs[owner_path] = parent
                    self.functions.append((parent, construct, owner_path, path))
                else:
                    self.functions.append((construct, construct, path, path))
                self._constructs[path] = construct

    def metadata(self, path: str) -> list[Any]:
        """The metadata entries of the construct at ``path``."""
        if path not in self._metadata:
            construct = self.construct(path)
            self._metadata[path] = construct.node.metadata if construct is not None else []
        return self._metadata[path]

    def lineage(self, path: str) -> list[str]:
        """The paths of the construct at ``path`` and of every construct above it, the root first."""
        parts = path.split("/") if path else []
        return ["", *("/".join(parts[: i + 1]) for i in range(len(parts)))]

    def bundling_required(self, path: str) -> bool:
        """Whether the stack holding the construct at ``path`` is bundled in this synth."""
        stacks = [s for s in self._bundling if path.startswith(s + "/")]
        return self._bundling[max(stacks, key=len)] if stacks else True

    def stacks_of(self, template_paths: list[str]) -> list[str]:
        """The paths of the stacks whose synthesized templates are ``template_paths``."""
        wanted = {os.path.realpath(p) for p in template_paths}
        found = []
        for path, stack in self._stacks.items():
            stage = Stage.of(stack)
            if stage is not None and os.path.realpath(os.path.join(stage.outdir, stack.template_file)) in wanted:
                found.append(path)
        return found

    def in_nested_stage(self, path: str) -> bool:
        return any(path.startswith(stage + "/") for stage in self.stages)

    def layer(self, stack: Stack, logical_id: str) -> lambda_.CfnLayerVersion | None:
        """The layer of ``stack`` whose logical id is ``logical_id`` (read for every layer on first use)."""
        if self._layer_ids is None:
            self._layer_ids = {}
            for layer in self._layers:
                holder = Stack.of(layer)
                self._layer_ids[(holder.node.path, str(holder.resolve(layer.logical_id)))] = layer
        return self._layer_ids.get((stack.node.path, logical_id))

    def read(self) -> dict[str, list[Any]]:
        """Path -> metadata of every construct read so far."""
        return dict(self._metadata)

    def construct(self, path: str) -> IConstruct | None:
        """The construct at ``path``, or None when there is none."""
        if path not in self._constructs:
            parent, _, name = path.rpartition("/")
            above = self.construct(parent)
            self._constructs[path] = above.node.try_find_child(name) if above is not None else None
        return self._constructs[path]
