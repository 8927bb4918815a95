"""One error hierarchy. Every message is complete as plain text.

Exceptions raised inside an aspect's ``visit`` reach the user through jsii as ``RuntimeError(str(exc))``:
the type and the traceback are lost, so the message itself names the construct path, the package, the
target and what to do next. Construct paths are attached in one way, ``with_constructs``, by the code
that knows them (the aspect), so the code below it never reads a construct.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable, Sequence
from typing import Self


class UvError(Exception):
    """Base class of every error cdk-uv-aspect raises on purpose."""

    def __init__(
        self,
        problem: str,
        *,
        fix: str,
        package: str | None = None,
        target: object | None = None,
        constructs: Sequence[str] = (),
        details: str = "",
    ) -> None:
        self.problem = problem
        self.fix = fix
        self.package = package
        self.target = target
        self.constructs = tuple(constructs)
        self.details = details
        super().__init__(self.render())

    def with_constructs(
        self, constructs: Iterable[str], *, package: str | None = None, target: object | None = None
    ) -> Self:
        """The same error, naming the constructs that asked for this build (replacing any named before),
        and the package and target where the error did not know them."""
        named = type(self).__new__(type(self))
        named.__dict__.update(self.__dict__)  # not copy.copy: it would call __init__ with the message alone
        named.constructs = tuple(constructs)
        named.package = self.package or package
        named.target = self.target if self.target is not None else target
        named.args = (named.render(),)
        return named

    def render(self) -> str:
        lines = [f"cdk-uv-aspect: {self.problem}"]
        if self.constructs:
            lines.append(f"  construct: {', '.join(self.constructs)}")
        if self.package:
            lines.append(f"  package:   {self.package}")
        if self.target is not None:
            lines.append(f"  target:    {self.target}")
        lines.append(f"  fix:       {self.fix}")
        if self.details:
            lines.append(self.details.rstrip())
        return "\n".join(lines)

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else self.render()


class MarkerError(UvError):
    """A marker whose data is not a valid package name, or on a function that can't be built."""


class WorkspaceError(UvError):
    """No workspace, a package that is not in it, or a lock that is missing or stale."""


class TargetError(UvError):
    """The function's runtime or the package's requires-python rule out a build."""


class WheelError(UvError):
    """A locked dependency has no wheel that loads on the target."""


class ToolError(UvError):
    """uv or the target's Python is missing, too old, or failed."""


class SettingError(UvError):
    """An environment variable or a setting whose value can't be used (``CDK_UV_REBUILD=maybe``)."""


class FileError(UvError):
    """A file or folder that can't be read or written: a cache path that is a file, a read-only or full
    disk, a link loop, a file name that is not text."""


class PolicyError(UvError):
    """A policy-check setting that can't be used, such as an acknowledgement without a reason."""


class ImageError(UvError):
    """An image function's Python version, Dockerfile or handler (CMD) is unusable."""


class CredentialsError(UvError):
    """A package index refused the credentials uv sent, or uv had none for it."""


class DockerError(UvError):
    """A build needed Docker (a container of the target's platform), and Docker was missing or failed."""


class EngineError(UvError):
    """A container engine could not build or run an image function's image (``cdk-uv invoke``)."""


class UnexpectedError(UvError):
    """Anything else that went wrong in a build: a bug, reported with what was being built."""

    @classmethod
    def wrap(cls, exc: BaseException, *, package: str | None = None, target: object | None = None) -> UnexpectedError:
        frames = traceback.format_exception(exc)
        return cls(
            f"an unexpected {type(exc).__name__} stopped the build: {exc}",
            package=package,
            target=target,
            fix="this is a bug in cdk-uv-aspect: please report it to its maintainers with the details below",
            details="".join(frames[-12:]).rstrip(),
        )


class BuildErrors(UvError):
    """Several builds failed; each is reported, with its own constructs, package and target."""

    def __init__(self, errors: Sequence[UvError]) -> None:
        self.errors = tuple(errors)
        super().__init__(
            f"{len(self.errors)} builds failed",
            fix="fix each error below",
            details="\n\n".join(str(e) for e in self.errors),
        )

    def render(self) -> str:
        return "\n\n".join([f"cdk-uv-aspect: {self.problem}", *(str(e) for e in self.errors)])
