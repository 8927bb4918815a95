"""The record of what was built: the ``uv:build`` metadata entry on each function and layer the aspect built.

One typed record, written once (``_swap.record_build``) and read through one function (``recorded``) by the
policy checks (from the construct tree), ``cdk-uv report`` and ``cdk-uv invoke`` (from a cloud assembly).
Its JSON form, in the assembly's metadata, is a contract with whatever reads an assembly later: its keys
are camelCase, as the CDK writes its own metadata. CDK-free.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

BUILT = "uv:build"
"""The metadata type of the record: one entry on each function and layer the bundling aspect built."""


@dataclass(frozen=True)
class ImageRecord:
    """What an image function's image was made from."""

    python: str  # "3.13"
    dockerfile: str  # "default", or the path of the user's Dockerfile
    base: str | None  # the image its final stage builds FROM, build arguments filled in


@dataclass(frozen=True)
class BuildRecord:
    """What the bundling aspect built for one function or layer, and where it put it."""

    package: str
    target: str  # "python3.12-arm64"
    asset_hash: str
    extras: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    omitted: Mapping[str, str] = field(default_factory=dict)  # left for the runtime to provide: name -> version
    sbom: str | None = None  # the SBOM's path in the cloud assembly, relative to it
    files: int | None = None
    bytes: int | None = None  # unzipped
    build_seconds: float | None = None
    cached: bool | None = None  # taken from a cache
    origin: str | None = None  # "built" here, the build "cache" or the "team cache"
    key: str | None = None  # the build's entry in the build cache and the team cache: what `cdk-uv verify` checks
    requires_python: str | None = None  # the package's requires-python, when it declares one
    asset: str | None = None  # the construct path of a zip asset (the functions of a stack share it)
    image: ImageRecord | None = None  # an image function's
    layer: bool = False  # a layer's record: a marked LayerVersion, or a function's dependencies
    # Slimmed (UvOptions.slim): mode, bytesBefore, bytes, removed, strip, native, stripped, unstripped, modules,
    # and proven (the interpreter) or unproven (why). See _slim.
    slim: Mapping[str, Any] | None = None

    def as_data(self) -> dict[str, Any]:
        """The metadata entry's data: JSON, camelCase keys; a field that is None is left out (as the CDK
        leaves out a null value of metadata)."""
        data: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            elif isinstance(value, ImageRecord):
                value = {"python": value.python, "dockerfile": value.dockerfile, "base": value.base}
            data[_camel(f.name)] = value
        return data

    @classmethod
    def _parse(cls, data: Any) -> BuildRecord | None:
        """The record in a metadata entry's data; None for anything this library did not write."""
        if not isinstance(data, Mapping) or not isinstance(data.get("package"), str):
            return None
        image = data.get("image")
        return cls(
            package=data["package"],
            target=str(data.get("target") or ""),
            asset_hash=str(data.get("assetHash") or ""),
            extras=tuple(str(e) for e in data.get("extras") or ()),
            groups=tuple(str(g) for g in data.get("groups") or ()),
            omitted={str(k): str(v) for k, v in (data.get("omitted") or {}).items()},
            sbom=_str(data.get("sbom")),
            files=_int(data.get("files")),
            bytes=_int(data.get("bytes")),
            build_seconds=float(data["buildSeconds"]) if isinstance(data.get("buildSeconds"), (int, float)) else None,
            cached=data["cached"] if isinstance(data.get("cached"), bool) else None,
            origin=_str(data.get("origin")),
            key=_str(data.get("key")),
            requires_python=_str(data.get("requiresPython")),
            asset=_str(data.get("asset")),
            image=(
                ImageRecord(str(image.get("python") or ""), str(image.get("dockerfile") or ""), _str(image.get("base")))
                if isinstance(image, Mapping)
                else None
            ),
            layer=data.get("layer") is True,
            slim=dict(data["slim"]) if isinstance(data.get("slim"), Mapping) else None,
        )


def recorded(entries: Iterable[tuple[str, Any]]) -> BuildRecord | None:
    """The build record among a construct's metadata entries (``(type, data)`` pairs), or None: the one reader."""
    return next((BuildRecord._parse(data) for kind, data in entries if kind == BUILT), None)


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(word.capitalize() for word in rest)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
