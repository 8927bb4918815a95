"""One error hierarchy. Every message is complete as plain text.

Exceptions raised inside an aspect's ``visit`` reach the user through jsii as ``RuntimeError(str(exc))``:
the type and the traceback are lost, so the message itself names the construct path, the package, the
target and what to do next.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


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
        super().__init__(self._render())

    def with_constructs(self, constructs: Iterable[str]) -> UvError:
        """The same error, naming the constructs that asked for this build."""
        return type(self)(
            self.problem,
            fix=self.fix,
            package=self.package,
            target=self.target,
            constructs=tuple(constructs),
            details=self.details,
        )

    def _render(self) -> str:
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


class PolicyError(UvError):
    """A policy-check setting that can't be used, such as an acknowledgement without a reason."""


class BuildErrors(UvError):
    """Several builds failed; each is reported."""

    def __init__(self, errors: Sequence[UvError]) -> None:
        self.errors = tuple(errors)
        Exception.__init__(self, self._render())

    def _render(self) -> str:
        parts = [f"cdk-uv-aspect: {len(self.errors)} builds failed"]
        parts += [str(e) for e in self.errors]
        return "\n\n".join(parts)


class ImageError(UvError):
    """An image function's Python version, Dockerfile or handler (CMD) is unusable."""


class DockerError(UvError):
    """A build needed Docker (a container of the target's platform), and Docker was missing or failed."""
