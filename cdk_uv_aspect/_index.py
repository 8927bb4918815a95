"""Indexes: where each locked package comes from, and what a uv call needs to reach its index.

uv finds the workspace's indexes (``[[tool.uv.index]]`` in the root's pyproject.toml) and their
credentials (``UV_INDEX_<NAME>_USERNAME``/``_PASSWORD``, a keyring, a netrc file), and the environment's
(``UV_INDEX``, ``UV_DEFAULT_INDEX``, ``UV_INDEX_URL``, ``UV_EXTRA_INDEX_URL``) by itself: the build's uv
calls inherit this process's environment and run from the workspace root. Three things it can't find:

- A package pinned to an explicit index (``[tool.uv.sources] name = { index = "private" }``, with
  ``explicit = true`` on the index): ``uv export`` writes it without its index, and ``uv pip install -r``
  never reads ``[tool.uv.sources]``, so it looks for it on the other indexes only. Such packages are
  installed by a command of their own that names their index (``split``): ``--index NAME=URL`` with the
  URL as uv.lock records it (uv never writes credentials there), first in uv's order, so that no other
  package is looked up on it.
- The Docker fallback's container sees neither the workspace nor this machine's environment:
  ``container_environment`` says which variables it gets (by name: the engine's client reads the
  values from its own environment) and ``netrc`` which file it mounts.
- ``uv build`` of a local package runs on a private copy outside the workspace: it gets the workspace's
  indexes through the same variables, so that build backends come from where the workspace's packages do.

Credentials stay where the user put them: never on a command line, in a file we write, or in a message.
"""

from __future__ import annotations

import functools
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from ._names import normalize, pinned
from ._workspace import Workspace

# The variables of uv's index configuration that the container gets, by name: the index URLs, each named
# index's credentials (UV_INDEX_<NAME>_USERNAME/_PASSWORD), and how uv picks among indexes.
_INDEX_VARIABLE = re.compile(r"UV_(INDEX|INDEX_\w+|DEFAULT_INDEX|EXTRA_INDEX_URL|INSECURE_HOST|HTTP_TIMEOUT)")


@dataclass(frozen=True)
class Index:
    """An index of the workspace's configuration."""

    name: str | None
    url: str  # as configured: may carry credentials, so it goes into environments only
    explicit: bool = False
    default: bool = False

    @property
    def spec(self) -> str:
        """``name=url`` as uv's ``--index`` and ``UV_INDEX`` take it (the URL alone without a name)."""
        return f"{self.name}={self.url}" if self.name else self.url

    @property
    def credential_variables(self) -> tuple[str, str] | None:
        """``UV_INDEX_<NAME>_USERNAME`` and ``_PASSWORD``: uv's variables for this index's credentials."""
        if not self.name:
            return None
        name = re.sub(r"[^A-Z0-9]", "_", self.name.upper())
        return f"UV_INDEX_{name}_USERNAME", f"UV_INDEX_{name}_PASSWORD"


def public(url: str) -> str:
    """``url`` without credentials (``https://user:token@host/simple`` -> ``https://host/simple``)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def same_url(a: str, b: str) -> bool:
    return public(a).rstrip("/").lower() == public(b).rstrip("/").lower()


def configured(root: Path) -> tuple[Index, ...]:
    """The indexes the workspace root configures (uv.toml, then pyproject.toml's ``[tool.uv]``), in order."""
    found: list[Index] = []
    for path, table in ((root / "uv.toml", ()), (root / "pyproject.toml", ("tool", "uv"))):
        try:
            settings: object = tomllib.loads(path.read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue  # no such file, or one uv itself will refuse, with its own message
        for key in table:
            settings = settings.get(key, {}) if isinstance(settings, dict) else {}
        if not isinstance(settings, dict):
            continue
        for entry in settings.get("index", []):
            if isinstance(entry, dict) and isinstance(entry.get("url"), str):
                name = entry.get("name") if isinstance(entry.get("name"), str) else None
                found.append(Index(name, entry["url"], bool(entry.get("explicit")), bool(entry.get("default"))))
        if isinstance(settings.get("index-url"), str):  # the pip-style settings uv still reads
            found.append(Index(None, settings["index-url"], default=True))
        extra = settings.get("extra-index-url", [])
        found += [Index(None, url) for url in (extra if isinstance(extra, list) else []) if isinstance(url, str)]
    return tuple(found)


def from_environment(environ: Mapping[str, str]) -> tuple[Index, ...]:
    """The indexes ``UV_INDEX`` and ``UV_DEFAULT_INDEX`` name (``name=url`` or a bare URL, space-separated)."""
    found = []
    for variable, default in (("UV_INDEX", False), ("UV_DEFAULT_INDEX", True)):
        for spec in environ.get(variable, "").split():
            name, _, url = spec.partition("=") if re.match(r"[\w.-]+=", spec) else ("", "", spec)
            found.append(Index(name or None, url, default=default))
    return tuple(found)


def named(root: Path, url: str, environ: Mapping[str, str]) -> tuple[Index, str] | None:
    """The index at ``url`` that the workspace or the environment configures, and where it does."""
    for index in configured(root):
        if same_url(index.url, url):
            return index, str(root / "pyproject.toml")
    for index in from_environment(environ):
        if same_url(index.url, url):
            return index, "UV_DEFAULT_INDEX" if index.default else "UV_INDEX"
    return None


@dataclass(frozen=True)
class Group:
    """Locked requirements installed by one command: ``index`` is the explicit index they are pinned to,
    or None for the rest, which uv finds through its own configuration."""

    requirements: str
    index: str | None = None  # "name=url", the URL as uv.lock records it


def split(requirements: str, workspace: Workspace) -> list[Group]:
    """The registry requirements ``uv export`` wrote, one group per explicit index they are pinned to."""
    explicit = [index for index in configured(workspace.root) if index.explicit and index.name]
    if not explicit:
        return [Group(requirements)]
    sources = _registries(workspace.lock_bytes)
    groups: dict[str | None, list[str]] = {}
    for block in re.split(r"(?<!\\)\n", requirements):
        pin = pinned(block)
        registry = sources.get(pin) if pin else None
        index = next((i for i in explicit if registry and same_url(i.url, registry)), None)
        key = f"{index.name}={public(registry)}" if index and registry else None
        groups.setdefault(key, []).append(block)
    return [Group("\n".join(blocks).strip("\n") + "\n", key) for key, blocks in groups.items()]


@functools.lru_cache(maxsize=4)
def _registries(lock_bytes: bytes) -> dict[tuple[str, str], str]:
    """(name, version) -> the registry URL uv.lock records for it: parsed once per lock, only read."""
    lock = tomllib.loads(lock_bytes.decode())
    found: dict[tuple[str, str], str] = {}
    for entry in lock.get("package", []):
        registry = entry.get("source", {}).get("registry")
        if isinstance(registry, str) and isinstance(entry.get("name"), str):
            found[(normalize(entry["name"]), str(entry.get("version")))] = registry
    return found


def environment(root: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """``UV_INDEX``/``UV_DEFAULT_INDEX`` for a uv call that can't read the workspace's configuration: the
    workspace's indexes (but its explicit ones) after the environment's, as uv orders them in the root."""
    indexes = [index for index in configured(root) if not index.explicit]
    values = {}
    extra = [index.spec for index in indexes if not index.default]
    if extra:
        values["UV_INDEX"] = " ".join(filter(None, [environ.get("UV_INDEX"), *extra]))
    default = next((index.spec for index in indexes if index.default), None)
    if default and not (environ.get("UV_DEFAULT_INDEX") or environ.get("UV_INDEX_URL")):
        values["UV_DEFAULT_INDEX"] = default
    return values


def container_environment(root: Path, environ: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """What the fallback's container needs of the index configuration: the values to add to the engine
    client's environment, and the names of every variable it passes on (``--env NAME``, no value)."""
    values = environment(root, environ)
    names = sorted({*(name for name in environ if _INDEX_VARIABLE.fullmatch(name)), *values})
    return values, names


def netrc(environ: Mapping[str, str]) -> Path | None:
    """The netrc file uv reads on this machine (``$NETRC``, else ``~/.netrc``), if there is one."""
    path = Path(environ["NETRC"]) if environ.get("NETRC") else Path(os.path.expanduser("~/.netrc"))
    return path if path.is_file() else None


# uv's words when an index refused what it sent: "An index URL (URL) could not be queried due to a lack
# of valid authentication credentials (401 Unauthorized)", "An index (URL) returned a 403 Forbidden error",
# "Failed to fetch: `URL`" then "HTTP status client error (401 Unauthorized) for url (URL)".
_REFUSED = re.compile(r"\b(401 Unauthorized|403 Forbidden|[Mm]issing credentials)")
_REFUSING_URL = re.compile(r"An index(?: URL)? \((\S+?)\)|HTTP status client error \([^)]*\) for url \((\S+?)\)")
_MISSING = re.compile(r"Because ([A-Za-z0-9._-]+)(?:\{[^}]*\})? was not found")


@dataclass(frozen=True)
class Refusal:
    """An index refused uv's credentials: which (when uv says), with what status, for which dependency."""

    url: str | None
    status: str
    dependency: str | None

    @staticmethod
    def find(stderr: str) -> Refusal | None:
        status = _REFUSED.search(stderr)
        if status is None:
            return None
        where = _REFUSING_URL.search(stderr)
        missing = _MISSING.search(stderr)
        url = public(next(filter(None, where.groups()))) if where else None
        return Refusal(url, status.group(1), missing.group(1) if missing else None)

    @property
    def index(self) -> str:
        return f"the index at {self.url}" if self.url else "a package index"

    def fix(self, root: Path, environ: Mapping[str, str]) -> str:
        """How to give uv this index's credentials, by the name the index has."""
        found = named(root, self.url, environ) if self.url else None
        variables = found[0].credential_variables if found else None
        if found and variables:
            how = f"set {variables[0]} and {variables[1]} (the index is named {found[0].name!r} in {found[1]})"
        else:
            how = (
                "name the index (`[[tool.uv.index]] name = ...` in the workspace's pyproject.toml, or "
                "UV_INDEX=<name>=<url>) and set UV_INDEX_<NAME>_USERNAME and UV_INDEX_<NAME>_PASSWORD"
            )
        return (
            f"{how}; or let uv read them from a keyring (UV_KEYRING_PROVIDER=subprocess) or a netrc file "
            "(~/.netrc or $NETRC). A CodeArtifact token expires: get a new one with `aws codeartifact "
            "get-authorization-token` (see docs/private-indexes.md)"
        )
