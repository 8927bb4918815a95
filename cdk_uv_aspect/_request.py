"""The build request: a package of a workspace, for a target, with the options that shape its output.

Its key is a digest of everything that decides the output: uv.lock, the sources of the local packages in
its closure, the target, the options that change the output, this library's version and uv's. The
extras and groups it deploys are the options' and the function's own, checked against the package.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from . import _cache
from ._errors import WorkspaceError, setting
from ._failure import Failure
from ._names import normalize
from ._options import UvOptions
from ._target import Target
from ._version import LIBRARY_VERSION
from ._workspace import Package, Workspace


@dataclass(frozen=True)
class BuildRequest:
    """What to build: a package of a workspace, for a target, with the options that shape the output.

    ``extras`` and ``groups``: what is deployed besides the package's runtime dependencies, the options'
    and the function's own together (``BuildRequest.create`` checks them against the package).
    """

    workspace: Workspace
    package: str
    target: Target
    options: UvOptions
    extras: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()

    @classmethod
    def create(
        cls,
        workspace: Workspace,
        package: str,
        target: Target,
        options: UvOptions,
        *,
        extras: Sequence[str] = (),
        groups: Sequence[str] = (),
    ) -> BuildRequest:
        """The request for ``package``, with ``options``' extras and groups and a function's own (``extras``,
        ``groups``), each checked against the package's pyproject.toml."""
        found = workspace.package(package)
        chosen = {}
        for kind, given, by_function, defined in (
            ("extras", options.extras, extras, found.extras),
            ("groups", options.groups, groups, found.groups),
        ):
            chosen[kind] = tuple(sorted({*given, *(normalize(name) for name in by_function)}))
            unknown = [name for name in chosen[kind] if name not in defined]
            if unknown:
                raise _unknown(found, target, kind, unknown, defined, from_options=set(unknown) & set(given))
        return cls(workspace, found.name, target, options, chosen["extras"], chosen["groups"])

    @property
    def output_options(self) -> dict[str, object]:
        return {
            "bytecode": self.options.bytecode,
            "exclude": list(self.options.exclude),
            "lock": self.options.lock,
            "extras": list(self.extras),
            "groups": list(self.groups),
            "omit_runtime_provided": self.options.omit_runtime_provided,
        }

    def key(self, uv_version: str) -> str:
        parts = {
            "library": LIBRARY_VERSION,
            "uv": uv_version,
            "package": self.package,
            "target": self.target.key,
            # The OS of a runtime this library does not list (UvOptions(new_runtimes)): the user's to change.
            **({"declared_os": self.target.declared_os} if self.target.declared_os else {}),
            "options": self.output_options,
            "lock": hashlib.sha256(self.workspace.lock_bytes).hexdigest(),
            "sources": {
                p.name: self.workspace.fingerprint(p.name, self.options.cache_dir)
                for p in self.workspace.closure(self.package, self.groups)
            },
        }
        return _cache.entry_key(f"{self.package}-{self.target.key}", parts)

    @property
    def failure(self) -> Failure:
        return Failure(self.package, self.target, self.workspace.root)


def _unknown(
    package: Package, target: Target, kind: str, unknown: list[str], defined: tuple[str, ...], *, from_options: set[str]
) -> WorkspaceError:
    what = "extra" if kind == "extras" else "dependency group"
    table = "[project.optional-dependencies]" if kind == "extras" else "[dependency-groups]"
    where = f" (from {setting(kind)}, which applies to every marked function)" if from_options else ""
    pyproject = package.path / "pyproject.toml"
    fix = f"choose among the package's {kind}, or define it in {table} of {pyproject} and run `uv lock`"
    if from_options:
        fix += f"; to choose it for some functions only, put it in their marker: {{'{kind}': [...]}}"
    return WorkspaceError(
        f"package {package.name} has no {what} {', '.join(map(repr, unknown))}{where}; its {kind}: "
        f"{', '.join(defined) or 'none'}",
        package=package.name,
        target=target,
        fix=fix,
    )
