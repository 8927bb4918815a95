"""One error hierarchy. Every message is complete as plain text.

Exceptions raised inside an aspect's ``visit`` would reach the user through jsii as
``RuntimeError(str(exc))``, wrapped in Python and JavaScript tracebacks. The aspect does not raise them:
it reports each as a validation error of the construct (see ``_aspect``), which the CDK formats, and
``report_cleanly`` prints that error without a traceback when it ends ``python app.py``. So the message
itself names the construct path, the package, the target and what to do next. Construct paths are
attached in one way, ``with_constructs``, by the code that knows them (the aspect), so the code below it
never reads a construct.
"""

from __future__ import annotations

import os
import re
import sys
import traceback
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Self

DEBUG_ENV = "CDK_UV_DEBUG"
"""Set (to anything but "", "0", "false" or "no") to see the Python and JavaScript traceback of an error."""

# Terminal colour and cursor sequences (CSI and OSC): uv writes them when something forces colour.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")


def plain(text: str) -> str:
    """``text`` without terminal escape sequences."""
    return _ANSI.sub("", text)


def debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


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
        self.problem = plain(problem)
        self.fix = fix
        self.package = package
        self.target = target
        self.constructs = tuple(constructs)
        self.details = plain(details)
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


class CodeError(UvError):
    """The workspace's own code can't run on the target: a handler the built asset does not have, or a
    file the runtime's Python can't compile."""


class SlimError(UvError):
    """Slimming (``UvOptions(slim=...)``) would break an import that works without it."""


class ImageError(UvError):
    """An image function's Python version, Dockerfile or handler (CMD) is unusable."""


class CredentialsError(UvError):
    """A package index refused the credentials uv sent, or uv had none for it."""


class DockerError(UvError):
    """A build needed Docker (a container of the target's platform), and Docker was missing or failed."""


class EngineError(UvError):
    """A container engine could not build or run an image function's image (``cdk-uv invoke``)."""


class AssemblyError(UvError):
    """A cloud assembly (``cdk.out``) whose files can't be read: missing, not JSON, or not as the CDK writes them."""


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


# --- how a fix names a setting ----------------------------------------------------------------------

# The cdk-uv command's flag or variable for each setting it has, by UvOptions field ({} is the value).
_COMMAND_LINE = {
    "workspace": "--workspace {}",
    "exclude": "--exclude {}",
    "extras": "--extra {}",
    "groups": "--group {}",
    "bytecode": "--no-bytecode",
    "lock": "--frozen",
    "omit_runtime_provided": "--omit-runtime-provided",
    "cache_dir": "$CDK_UV_CACHE_DIR",
    "command_timeout": "$CDK_UV_COMMAND_TIMEOUT",
    "rebuild": "CDK_UV_REBUILD=1",
}
# The environment variable that stands for a setting in an app too.
_VARIABLES = {"cache_dir": "$CDK_UV_CACHE_DIR", "command_timeout": "$CDK_UV_COMMAND_TIMEOUT"}


def setting(name: str, value: str = "...") -> str:
    """How a user changes setting ``name`` to ``value``, for the fix of an error: ``UvOptions(name=value)``
    (and its environment variable, if it has one) in an app; the flag or variable of the ``cdk-uv`` command
    when the command runs (``_state.COMMAND_LINE``)."""
    from . import _state

    if _state.COMMAND_LINE.is_set() and name in _COMMAND_LINE:
        return _COMMAND_LINE[name].format(value)
    variable = f" or {_VARIABLES[name]}" if name in _VARIABLES else ""
    return f"UvOptions({name}={value}){variable}"


# --- errors at the top of `python app.py` ----------------------------------------------------------


def report_cleanly() -> None:
    """Print our errors that end ``python app.py`` (a failed ``app.synth()``) as their message alone.

    ``app.synth()`` raises the CDK's validation error through jsii, which Python would print inside a
    Python and a JavaScript traceback, with the message twice. Installed once, when an error is first
    reported; any other exception, and ours when CDK_UV_DEBUG is set, goes to the hook installed before.
    """
    if getattr(sys.excepthook, "_cdk_uv_aspect", False):
        return
    previous = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        if is_ours(value) and not debugging():
            print(clean_message(value), file=sys.stderr, flush=True)
            return
        previous(kind, value, tb)

    hook._cdk_uv_aspect = True  # type: ignore[attr-defined]
    sys.excepthook = hook


def is_ours(exc: BaseException) -> bool:
    """An error that came through jsii (from the CDK) and holds one of our messages."""
    if isinstance(exc, UvError):
        return False  # raised in Python by a call of the user's (build(), mark_package): a normal exception
    cause = exc.__cause__
    from_jsii = cause is not None and type(cause).__module__.startswith("jsii")
    return isinstance(exc, RuntimeError) and from_jsii and "cdk-uv-aspect: " in str(exc)


def clean_message(exc: BaseException) -> str:
    """The CDK's message, without the error's class name that jsii puts before it."""
    text = plain(str(exc)).strip()
    name, sep, rest = text.partition(": ")
    if sep and name.isidentifier() and name.startswith("Validation"):
        text = rest
    return text
