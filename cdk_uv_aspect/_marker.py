"""The marker: a metadata entry ``uv: <package>`` (or ``uv: {"package": ..., ...}``) on a function or a layer.

CDK-free, so that the ``cdk-uv`` command can check a package name without starting node. The marker is
the contract between the user's app, the bundling aspect and whatever reads a cloud assembly later.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ._errors import MarkerError
from ._names import is_name, is_python_version, normalize

if TYPE_CHECKING:
    from constructs import IConstruct, Node

MARKER = "uv"
"""The metadata type of the marker: ``fn.node.add_metadata("uv", "api")``."""

IMAGE_KEYS = ("python", "dockerfile", "build_args", "base_digest")
"""Marker keys that only image functions take (a zip function's Python version is its runtime)."""
SELECTION_KEYS = ("extras", "groups")
"""Marker keys that choose what of the package is deployed, for zip and image functions alike."""
LAYER_KEY = "dependencies_layer"
"""The marker key that puts a zip function's third-party dependencies into a layer (or keeps them in)."""
BUDGET_KEY = "init_budget_ms"
"""The marker key of a function's own init budget for the policy checks (``PolicyOptions.init_budget_ms``)."""
SLIM_KEY = "slim"
"""The marker key that slims a function's or a layer's asset (True, False or "bytecode-only"), or keeps it whole."""
KEYS = ("package", *SELECTION_KEYS, *IMAGE_KEYS, LAYER_KEY, BUDGET_KEY, SLIM_KEY)

_EXAMPLE = '{"package": "api", "extras": ["fast"], "groups": ["otel"]}'


def is_digest(value: object) -> bool:
    """Whether ``value`` is an image digest as registries write it: ``sha256:`` and 64 hex digits."""
    return isinstance(value, str) and re.fullmatch(r"sha256:[0-9a-f]{64}", value) is not None


@dataclass(frozen=True)
class Marker:
    """A marker's data, checked: the package (normalized), the extras and dependency groups it chooses
    (normalized, sorted), the image-only settings (``python`` is a layer's too), whether a zip function's
    third-party dependencies go into a layer, and whether its asset is slimmed (None: as the options say)."""

    package: str
    extras: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    python: str | None = None
    dockerfile: str | None = None
    build_args: tuple[tuple[str, str], ...] = ()
    base_digest: str | None = None
    dependencies_layer: bool | None = None
    init_budget_ms: float | None = None
    slim: bool | Literal["bytecode-only"] | None = None

    @classmethod
    def parse(cls, data: Any) -> Marker:
        """The marker with this data; a ``MarkerError`` saying what was expected for anything else."""
        fields: Mapping[str, Any] = data if isinstance(data, Mapping) else {"package": data}
        unknown = sorted(str(key) for key in set(fields) - set(KEYS))
        if unknown:
            raise MarkerError(
                f"the uv marker's data has unknown keys {unknown}",
                fix=f"use only {', '.join(KEYS)}, e.g. {_EXAMPLE}",
            )
        package = fields.get("package")
        if not is_name(package):
            raise MarkerError(
                f"the uv marker's data must be a package name, got {package if isinstance(data, Mapping) else data!r}",
                fix='write the marker as fn.node.add_metadata("uv", "<package>") or '
                'mark_package(fn, "<package>"), with the name from the package\'s pyproject.toml',
            )
        extras, groups = (_names(fields.get(key), key) for key in SELECTION_KEYS)
        python, dockerfile = fields.get("python"), fields.get("dockerfile")
        if python is not None and not is_python_version(python):
            raise MarkerError(
                f"the uv marker's python must be a version such as '3.12', got {python!r}",
                fix='write it as a string, e.g. {"package": "api", "python": "3.12"}',
            )
        if dockerfile is not None and not isinstance(dockerfile, str):
            raise MarkerError(
                f"the uv marker's dockerfile must be a path, got {dockerfile!r}",
                fix="give the Dockerfile's path relative to the workspace root, e.g. 'docker/api.Dockerfile'",
            )
        args = fields.get("build_args") or {}
        if not isinstance(args, Mapping) or not all(isinstance(x, str) for pair in args.items() for x in pair):
            raise MarkerError(
                f"the uv marker's build_args must map names to strings, got {args!r}",
                fix='write them as {"build_args": {"NAME": "value"}}',
            )
        digest = fields.get("base_digest")
        if digest is not None and not is_digest(digest):
            raise MarkerError(
                f"the uv marker's base_digest must be an image digest, sha256:<64 hex digits>, got {digest!r}",
                fix="copy it from `docker buildx imagetools inspect public.ecr.aws/lambda/python:<version>` "
                '(the "Digest:" line), e.g. {"package": "api", "base_digest": "sha256:..."}',
            )
        layer = fields.get(LAYER_KEY)
        if layer is not None and not isinstance(layer, bool):
            raise MarkerError(
                f"the uv marker's {LAYER_KEY} must be true or false, got {layer!r}",
                fix=f'write it as {{"package": "api", "{LAYER_KEY}": True}}',
            )
        budget = fields.get(BUDGET_KEY)
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget <= 0):
            raise MarkerError(
                f"the uv marker's {BUDGET_KEY} must be a number of milliseconds above 0, got {budget!r}",
                fix=f'write it as {{"package": "api", "{BUDGET_KEY}": 300}}',
            )
        slim = fields.get(SLIM_KEY)
        if not (slim is None or slim is True or slim is False or slim == "bytecode-only"):
            raise MarkerError(
                f"the uv marker's {SLIM_KEY} must be true, false or 'bytecode-only', got {slim!r}",
                fix=f'write it as {{"package": "api", "{SLIM_KEY}": True}}',
            )
        sorted_args = tuple(sorted(args.items()))
        return cls(normalize(package), extras, groups, python, dockerfile, sorted_args, digest, layer, budget, slim)

    @property
    def image_settings(self) -> dict[str, Any]:
        """The image-only keys this marker sets, with their values."""
        given = {
            "python": self.python,
            "dockerfile": self.dockerfile,
            "build_args": dict(self.build_args),
            "base_digest": self.base_digest,
        }
        return {key: value for key, value in given.items() if value}

    def as_data(self) -> str | dict[str, Any]:
        """The metadata entry's data: the bare name when nothing else is set."""
        chosen = {key: list(value) for key, value in (("extras", self.extras), ("groups", self.groups)) if value}
        extra = {**chosen, **self.image_settings}
        if self.dependencies_layer is not None:
            extra[LAYER_KEY] = self.dependencies_layer
        if self.init_budget_ms is not None:
            extra[BUDGET_KEY] = self.init_budget_ms
        if self.slim is not None:
            extra[SLIM_KEY] = self.slim
        return {"package": self.package, **extra} if extra else self.package


def _names(value: Any, key: str) -> tuple[str, ...]:
    """A marker's list of extra or group names, normalized (as uv compares them) and sorted."""
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise MarkerError(
            f"the uv marker's {key} must be a list of names, got {value!r}",
            fix=f"write them as a list, e.g. {_EXAMPLE}",
        )
    bad = [name for name in value if not is_name(name)]
    if bad:
        raise MarkerError(
            f"the uv marker's {key} must be names as pyproject.toml writes them, got {bad[0]!r}",
            fix=f"use the names from the package's pyproject.toml, e.g. {_EXAMPLE}",
        )
    return tuple(sorted({normalize(name) for name in value}))


def package_of(data: Any) -> str:
    """The package named by a marker's data, normalized; a clear error for anything else."""
    return Marker.parse(data).package


def markers_of(node: Node) -> list[Any]:
    """The data of every ``uv`` marker on a construct (``node`` is its ``.node``), in the order added."""
    return [entry.data for entry in node.metadata if entry.type == MARKER]


def marked_package(entries: Iterable[tuple[str, Any]]) -> str | None:
    """The package the first ``uv`` marker among a construct's metadata entries (``(type, data)`` pairs) names,
    read by ``Marker.parse``; None when it has no marker. A marker that is not valid (the aspect refuses it)
    gives its package as written, so that the function still reads as marked."""
    data = next((data for kind, data in entries if kind == MARKER), None)
    if data is None:
        return None
    try:
        return Marker.parse(data).package
    except MarkerError:
        written = data.get("package") if isinstance(data, Mapping) else data
        return str(written) if written else None


def mark_package(
    function: IConstruct,
    package: str,
    *,
    extras: Sequence[str] | None = None,
    groups: Sequence[str] | None = None,
    python: str | None = None,
    dockerfile: str | None = None,
    build_args: Mapping[str, str] | None = None,
    base_digest: str | None = None,
    dependencies_layer: bool | None = None,
    init_budget_ms: float | None = None,
    slim: bool | Literal["bytecode-only"] | None = None,
) -> None:
    """Mark ``function`` (or a ``LayerVersion``) as built from uv workspace package ``package``.

    The same as ``function.node.add_metadata("uv", package)``, with the data checked now::

        mark_package(fn, "api")

    A function may add the package's extras (``[project.optional-dependencies]``) and dependency groups
    (``[dependency-groups]``) to what it deploys; they are checked against the package when it is built::

        mark_package(fn, "api", extras=["fast"], groups=["otel"])

    Image functions (``DockerImageFunction``) may say their Python version, a Dockerfile (relative to
    the workspace root) and build arguments; the marker's data is then a dict::

        mark_package(image_fn, "api", python="3.13", dockerfile="docker/api.Dockerfile")

    ``base_digest`` pins the default Dockerfile's Lambda base image by digest (``sha256:...``).

    ``dependencies_layer=True`` puts a zip function's third-party dependencies into a layer the aspect makes
    and attaches (``False`` keeps them in, whatever ``UvOptions(dependencies_layer=...)`` says)::

        mark_package(fn, "api", dependencies_layer=True)

    ``init_budget_ms`` is the function's own init budget for :class:`UvPolicyChecks` (its
    ``PolicyOptions(init_budget_ms=...)`` for every function)::

        mark_package(fn, "api", init_budget_ms=300)
    ``slim`` slims this function's (or layer's) asset, whatever ``UvOptions(slim=...)`` says: ``True``,
    ``"bytecode-only"``, or ``False`` to keep it whole (see ``UvOptions.slim``)::

        mark_package(fn, "api", slim=True)

    A marked ``LayerVersion`` is built as a Python layer (``python/``, at ``/opt/python``) for its compatible
    runtimes and architectures; ``python`` says which Python when its runtimes span several::

        mark_package(layer, "shared-deps", python="3.12")
    """
    data = {
        "package": package,
        "extras": list(extras) if extras is not None and not isinstance(extras, str) else extras,
        "groups": list(groups) if groups is not None and not isinstance(groups, str) else groups,
        "python": python,
        "dockerfile": dockerfile,
        "build_args": build_args,
        "base_digest": base_digest,
        "dependencies_layer": dependencies_layer,
        "init_budget_ms": init_budget_ms,
        "slim": slim,
    }
    try:
        marker = Marker.parse({key: value for key, value in data.items() if value is not None})
    except MarkerError as exc:
        raise exc.with_constructs([function.node.path]) from None  # the path is read only when needed
    # The name as written: the marker shows what the user wrote; the aspect normalizes it when it reads.
    written = marker.as_data()
    if isinstance(written, dict):
        written["package"] = package
    function.node.add_metadata(MARKER, written if isinstance(written, dict) else package)
