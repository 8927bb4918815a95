"""SBOM: a CycloneDX 1.5 document of what one built asset holds, from the asset itself and uv.lock.

Each distribution installed in the asset (a ``.dist-info`` folder) is a component, named and versioned
by its METADATA. uv.lock says where it came from: an index (a package URL, ``pkg:pypi/name@version``),
the exact wheel that was installed (its URL and SHA-256, matched by the tags in the dist-info's WHEEL
file), a git repository, or the workspace (its path). The function's own package is the document's
subject (``metadata.component``); the target, the extras and groups chosen and the packages left out for
the runtime to provide are its properties; ``dependencies`` is the lock's graph, cut to what is in the
asset.

Why not ``uv export --format cyclonedx1.5``: it needs uv 0.9.11 (experimental there, this library works
with 0.8), writes a random serial number and a timestamp, and lists every wheel of every platform from
the lock, not what was installed for the target.

Reproducible: no timestamp, a serial number derived from the content, everything sorted. Built once per
build and kept in the build-cache entry beside ``asset/`` (so that it never changes the asset's hash).
"""

from __future__ import annotations

import functools
import hashlib
import json
import tomllib
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

from packaging.tags import Tag
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from ._files import short_name
from ._names import normalize
from ._version import LIBRARY_VERSION

FILE = "sbom.cdx.json"
"""The SBOM's name in a build-cache entry, beside ``asset/`` and ``build.json``."""

FOLDER = "uv-sbom"
"""Where the SBOMs go in a cloud assembly: ``<assembly>/uv-sbom/<package>-<target>-<digest>.cdx.json``."""

PYPI = "https://pypi.org/simple"
_SERIAL_NAMESPACE = uuid.UUID("6ba7b811-9dad-11d1-80b4-00c04fd430c8")  # RFC 4122's URL namespace


@dataclass(frozen=True)
class Installed:
    """A distribution in the asset: its .dist-info's name, version, wheel tags and licence expression."""

    name: str  # normalized
    display: str  # as its METADATA writes it
    version: str
    tags: frozenset[Tag]
    license: str | None


def installed(site: Path) -> list[Installed]:
    """Every distribution installed in ``site``, by name."""
    found = []
    for dist in sorted(site.glob("*.dist-info")):
        try:
            meta = HeaderParser().parsestr((dist / "METADATA").read_text(encoding="utf-8", errors="replace"))
        except OSError:
            continue  # an excluded or damaged METADATA: nothing to name it by
        name, version = meta.get("Name"), meta.get("Version")
        if not name or not version:
            continue
        tags: set[Tag] = set()
        wheel = dist / "WHEEL"
        if wheel.is_file():
            for line in wheel.read_text(encoding="utf-8", errors="replace").splitlines():
                if line.startswith("Tag:"):
                    interpreter, abi, platform = line.split(":", 1)[1].strip().split("-", 2)
                    tags.add(Tag(interpreter, abi, platform))
        found.append(Installed(normalize(name), name, version, frozenset(tags), meta.get("License-Expression")))
    return sorted(found, key=lambda d: d.name)


def document(
    *,
    site: Path,
    lock: bytes,
    root: str,
    target: str,
    extras: Iterable[str] = (),
    groups: Iterable[str] = (),
    omitted: Mapping[str, str] | None = None,
    workspace_paths: Mapping[str, str] | None = None,
    uv_version: str,
) -> bytes:
    """The SBOM of the asset folder ``site``, built from workspace package ``root`` for ``target``.

    ``lock``: uv.lock's bytes. ``workspace_paths``: local package -> its path relative to the workspace.
    ``omitted``: packages left out for the runtime to provide -> their locked versions.
    """
    locked = _lock_entries(lock)
    local = dict(workspace_paths or {})
    extras, groups = sorted(extras), sorted(groups)
    dists = {d.name: d for d in installed(site)}
    components: dict[str, dict[str, Any]] = {}
    refs: dict[str, str] = {}
    for name, dist in dists.items():
        entry = _entry(locked, name, dist.version)
        refs[name], components[name] = _component(dist.display, dist.version, entry, dist, local.get(name))
    root_entry = _entry(locked, root, dists[root].version if root in dists else None)
    if root in components:
        subject = components.pop(root)
    else:  # an application package: its modules are copied, it has no dist-info
        version = str(root_entry.get("version") or "0")
        refs[root], subject = _component(root, version, root_entry, None, local.get(root))
    subject["type"] = "application"

    dependencies = []
    for name in sorted(refs):
        entry = root_entry if name == root else _entry(locked, name, dists[name].version)
        wanted = _dependency_names(entry, extras if name == root else (), groups if name == root else ())
        depends = sorted({refs[d] for d in wanted if d in refs and d != name})
        dependencies.append({"ref": refs[name], "dependsOn": depends})

    properties = [{"name": "cdk-uv:target", "value": target}]
    properties += [{"name": "cdk-uv:extra", "value": e} for e in extras]
    properties += [{"name": "cdk-uv:group", "value": g} for g in groups]
    properties += [{"name": "cdk-uv:omitted", "value": f"{n}=={v}"} for n, v in sorted((omitted or {}).items())]
    bom: dict[str, Any] = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": "",
        "version": 1,
        "metadata": {
            "tools": {
                "components": [
                    {"type": "application", "name": "cdk-uv-aspect", "version": LIBRARY_VERSION},
                    {"type": "application", "name": "uv", "version": uv_version},
                ]
            },
            "component": subject,
            "properties": properties,
        },
        "components": [components[name] for name in sorted(components)],
        "dependencies": dependencies,
    }
    # The same content, the same serial number: an identifier of this document that any build reproduces.
    bom["serialNumber"] = f"urn:uuid:{uuid.uuid5(_SERIAL_NAMESPACE, json.dumps(bom, sort_keys=True))}"
    return (json.dumps(bom, indent=1, ensure_ascii=False) + "\n").encode()


def file_name(package: str, target: str, content: bytes) -> str:
    """The SBOM's name in the cloud assembly: by what it is for and by its content."""
    return f"{short_name(package)}-{target}-{hashlib.sha256(content).hexdigest()[:16]}.cdx.json"


@functools.lru_cache(maxsize=4)
def _lock_entries(lock: bytes) -> dict[str, list[dict[str, Any]]]:
    """uv.lock's entries by normalized name: parsed once per lock (every build of a synth passes the same
    bytes), and only read."""
    try:
        data = tomllib.loads(lock.decode())
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}
    entries: dict[str, list[dict[str, Any]]] = {}
    for entry in data.get("package", []):
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            entries.setdefault(normalize(entry["name"]), []).append(entry)
    return entries


def _entry(locked: Mapping[str, list[dict[str, Any]]], name: str, version: str | None) -> dict[str, Any]:
    """The lock's entry for ``name`` at ``version`` (a lock may hold two versions, for two platforms)."""
    candidates = locked.get(name, [])
    matching = [e for e in candidates if version is None or e.get("version") in (None, version)]
    return (matching or candidates or [{}])[0]


def _component(
    display: str, version: str, entry: Mapping[str, Any], dist: Installed | None, workspace_path: str | None
) -> tuple[str, dict[str, Any]]:
    source = entry.get("source") or {}
    component: dict[str, Any] = {"type": "library", "bom-ref": "", "name": display, "version": version}
    references: list[dict[str, Any]] = []
    properties: list[dict[str, str]] = []
    ref = f"{normalize(display)}@{version}"
    if workspace_path is not None:
        properties.append({"name": "cdk-uv:workspace:path", "value": workspace_path})
    elif isinstance(source, dict) and ("registry" in source or not source):
        registry = str(source.get("registry") or PYPI).rstrip("/")
        qualifier = "" if registry == PYPI else f"?repository_url={quote(registry, safe='')}"
        ref = component["purl"] = f"pkg:pypi/{normalize(display)}@{quote(version, safe='.-_~')}{qualifier}"
        references += _artifact(entry, dist)
    elif isinstance(source, dict) and "git" in source:
        references.append({"type": "vcs", "url": str(source["git"])})
    elif isinstance(source, dict) and "url" in source:
        references += _artifact(entry, dist) or [{"type": "distribution", "url": str(source["url"])}]
    component["bom-ref"] = ref
    if dist is not None and dist.license:
        component["licenses"] = [{"expression": dist.license}]
    if references:
        component["externalReferences"] = references
    if properties:
        component["properties"] = properties
    return ref, component


def _artifact(entry: Mapping[str, Any], dist: Installed | None) -> list[dict[str, Any]]:
    """The wheel that was installed (the one whose tags are the dist-info's), else the source distribution."""
    if dist is not None and dist.tags:
        for wheel in entry.get("wheels") or []:
            url, digest = wheel.get("url"), wheel.get("hash")
            try:
                _, _, _, tags = parse_wheel_filename(str(url or wheel.get("path") or "").rsplit("/", 1)[-1])
            except InvalidWheelFilename:
                continue
            if tags == dist.tags and url:
                return [_reference("distribution", str(url), digest)]
    sdist = entry.get("sdist") or {}
    if sdist.get("url"):
        return [_reference("source-distribution", str(sdist["url"]), sdist.get("hash"))]
    return []


def _reference(kind: str, url: str, digest: object) -> dict[str, Any]:
    reference: dict[str, Any] = {"type": kind, "url": url}
    if isinstance(digest, str) and digest.startswith("sha256:"):
        reference["hashes"] = [{"alg": "SHA-256", "content": digest.removeprefix("sha256:")}]
    return reference


def _dependency_names(entry: Mapping[str, Any], extras: Iterable[str], groups: Iterable[str]) -> set[str]:
    """The names a lock entry depends on: its own dependencies, and those of the chosen extras and groups."""
    lists = [entry.get("dependencies") or []]
    lists += [(entry.get("optional-dependencies") or {}).get(extra) or [] for extra in extras]
    lists += [(entry.get("dev-dependencies") or {}).get(group) or [] for group in groups]
    return {normalize(d["name"]) for deps in lists for d in deps if isinstance(d, dict) and "name" in d}


def workspace_packages(document: Path) -> set[str] | None:
    """The workspace's own distributions named by an SBOM of ours (the subject and the components with a
    workspace path), normalized; None when there is no such document."""
    try:
        bom = json.loads(document.read_text())
        subject = bom["metadata"]["component"]
        components = [subject, *bom.get("components", [])]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    found = {normalize(str(subject.get("name")))}
    for component in components:
        properties = component.get("properties") or []
        if any(p.get("name") == "cdk-uv:workspace:path" for p in properties if isinstance(p, dict)):
            found.add(normalize(str(component.get("name"))))
    return found
