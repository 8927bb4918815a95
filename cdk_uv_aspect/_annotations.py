"""Warnings, infos and errors on constructs, written as the CDK's ``Annotations`` writes them, without
the JavaScript stack trace.

The CDK records the stack of every annotation it adds. In a Python app that stack is jsii's kernel, and
the CDK CLI prints its first frame above the message (``../tmpab12cd/lib/program.js:1:5591``), where it
reads like the location of a crash. The entries here are the same metadata (type, text, the
``[ack: <id>]`` tag of a warning) with no trace; the CDK's acknowledgements still apply to them.
"""

from __future__ import annotations

import typing

from aws_cdk import Annotations
from constructs import Construct, IConstruct

WARNING = "aws:cdk:warning"
INFO = "aws:cdk:info"
ERROR = "aws:cdk:error"

_PROBE = "CdkUvAcknowledgementProbe"


def add_warning(scope: IConstruct, id: str, message: str) -> bool:
    """``Annotations.of(scope).add_warning_v2(id, message)``: False when the warning is acknowledged
    (``Annotations.acknowledge_warning`` on the construct or a scope above it), and then not added."""
    # The CDK keeps warning acknowledgements out of reach; a warning added to a child that is removed
    # at once tells whether one covers this construct.
    probe = Construct(typing.cast(Construct, scope), _PROBE)  # jsii takes any construct here
    try:
        Annotations.of(probe).add_warning_v2(id, message)
        acknowledged = not probe.node.metadata
    finally:
        scope.node.try_remove_child(_PROBE)
    if not acknowledged:
        _add(scope, WARNING, f"{message} [ack: {id}]")
    return not acknowledged


def add_info(scope: IConstruct, message: str) -> None:
    _add(scope, INFO, message)


def add_error(scope: IConstruct, message: str) -> None:
    _add(scope, ERROR, message)


def _add(scope: IConstruct, kind: str, message: str) -> None:
    if not any(entry.type == kind and entry.data == message for entry in scope.node.metadata):
        scope.node.add_metadata(kind, message)  # no stack trace: the default
