"""Folders derived from a build, for layers: CDK-free (``_layer`` plans the layers and makes the constructs);
and ``derived``, the build-cache entry of any folder derived from a build (a slimmed one too: ``_slim``).

Both start from an ordinary build (``_build``), shared with functions of the same package and target, and
derive a folder from it into the build cache, keyed by the content of what they derive from:

- a **layer** folder holds ``python/`` (Lambda extracts a layer into ``/opt``, and ``/opt/python`` is on a
  Python runtime's search path) with the packages below it and their bytecode recorded under
  ``/opt/python``;
- a function's **code** folder, when its dependencies go to a layer, is the build without what the
  third-party distributions installed (their RECORD says which files), keeping the workspace's packages and
  the application's modules with their bytecode.

A derived folder is made in a private folder and renamed into place whole, like a build, so rebuilding from
the same build gives byte-identical output, and CDK hashes its content: a handler edit changes the code
folder and not the layer; a dependency bump changes the layer.
"""

from __future__ import annotations

import csv
import hashlib
import json
import posixpath
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from packaging.tags import parse_tag

from . import _asset, _cache, _sbom
from ._build import Built
from ._errors import TargetError
from ._files import work_dir
from ._lambda import LAYER_FOLDER, LAYER_ROOT, tag_loads
from ._names import normalize
from ._request import BuildRequest
from ._runner import Runner
from ._target import Target
from ._uv import Uv
from ._version import LIBRARY_VERSION


def layer_of(
    requests: Sequence[BuildRequest], others: Iterable[Target], builds: Mapping[BuildRequest, Built], runner: Runner
) -> Built:
    """The layer folder of a marked layer, from its builds (one per architecture of ``requests``): the same
    folder for each architecture, and wheels that load on each of ``others`` (the runtimes it lists)."""
    layers = [layer_folder(builds[r], runner) for r in requests]
    first = layers[0]
    for request, other in zip(requests[1:], layers[1:], strict=True):
        if content_digest(other) != content_digest(first):
            native = sorted(set(_native(other.asset_dir)) | set(_native(first.asset_dir)))
            raise TargetError(
                f"the layer lists architectures {', '.join(r.target.arch for r in requests)}, and its "
                f"packages differ between them (compiled code: {', '.join(native[:5]) or 'none found'}), so one "
                "zip can't serve both",
                package=request.package,
                target=request.target,
                fix="make one layer per architecture (compatible_architectures=[Architecture.ARM_64] on one, "
                "X86_64 on the other)",
            )
    refused = unloadable(first.asset_dir / LAYER_FOLDER, others)
    if refused:
        raise TargetError(
            "the layer's wheels don't all load on every runtime it lists: " + "; ".join(refused),
            package=first.request.package,
            target=first.request.target,
            fix="make one layer per Python version (or Amazon Linux version), or pin versions of these packages "
            "that publish wheels for every runtime the layer lists, and run `uv lock`",
        )
    return first


def split(built: Built, runner: Runner) -> tuple[Built, Built | None]:
    """``built`` as a code folder without its third-party packages, and a layer folder of those (None when
    it has none)."""
    site = built.asset_dir
    local = set(built.request.workspace.packages)
    owned = third_party_files(site, local)
    if not owned:
        return built, None

    def code(folder: Path) -> None:
        for rel in _files(site):
            if rel not in owned and _source_of(rel) not in owned:
                _copy(site / rel, folder / rel)

    def layer(folder: Path) -> None:
        for rel in sorted(owned):
            _copy(site / rel, folder / LAYER_FOLDER / rel)
        if built.request.options.bytecode:
            _compile(built, folder / LAYER_FOLDER, runner)

    parts = {"bytecode": built.request.options.bytecode}
    return derived(built, "code", parts, code), derived(built, "deps-layer", parts, layer)


def layer_folder(built: Built, runner: Runner) -> Built:
    """``built`` as a layer: everything below ``python/``, its bytecode recorded under ``/opt/python``."""

    def fill(folder: Path) -> None:
        for rel in _files(site):
            if "__pycache__" not in rel.split("/"):
                _copy(site / rel, folder / LAYER_FOLDER / rel)
        if built.request.options.bytecode:
            _compile(built, folder / LAYER_FOLDER, runner)

    site = built.asset_dir
    return derived(built, "layer", {"bytecode": built.request.options.bytecode}, fill)


def third_party_files(site: Path, local: set[str]) -> set[str]:
    """The files (relative paths) that the distributions in ``site`` other than ``local`` ones installed."""
    owned: set[str] = set()
    for dist in sorted(site.glob("*.dist-info")):
        if normalize(dist.name.split("-", 1)[0]) in local:
            continue
        owned.update(p.relative_to(site).as_posix() for p in dist.rglob("*") if p.is_file() or p.is_symlink())
        record = dist / "RECORD"
        if not record.is_file():
            continue
        with record.open(newline="") as f:
            for row in csv.reader(f):
                if row and not row[0].startswith(("/", "../")):
                    rel = posixpath.normpath(row[0])
                    if (site / rel).is_file() or (site / rel).is_symlink():
                        owned.add(rel)
    return owned


def content_digest(built: Built) -> str:
    """A digest of a folder's content (paths and bytes), from its manifest: what its asset hash follows."""
    manifest = built.info["manifest"]
    return hashlib.sha256(json.dumps({rel: m[2] for rel, m in sorted(manifest.items())}).encode()).hexdigest()


def unloadable(site: Path, targets: Iterable[Target]) -> list[str]:
    """Which installed distributions of ``site`` have no wheel tag that loads on each of ``targets``."""
    refused = []
    for dist in sorted(site.glob("*.dist-info")):
        wheel = dist / "WHEEL"
        if not wheel.is_file():
            continue
        tags = [line.split(":", 1)[1].strip() for line in wheel.read_text().splitlines() if line.startswith("Tag:")]
        for target in targets:
            if tags and not any(
                tag_loads(tag, target.python, target.arch, target.glibc) for text in tags for tag in parse_tag(text)
            ):
                refused.append(f"{dist.name.removesuffix('.dist-info')} ({', '.join(tags)}) on {target}")
    return refused


def _native(site: Path) -> list[str]:
    return [p.relative_to(site).as_posix() for p in site.rglob("*.so")]


# --- derived folders in the build cache -------------------------------------------------------------


def derived(
    built: Built, kind: str, parts: Mapping[str, object], fill: Callable[[Path], Mapping[str, Any] | None]
) -> Built:
    """A folder made from ``built`` by ``fill``, as an entry of the build cache keyed by ``built``'s content
    and ``parts`` (what else decides it): the layers' folders here, a slimmed folder (``_slim``). ``fill``
    writes the folder it is given, and returns what the entry's ``build.json`` says besides."""
    request = built.request
    parts = {"library": LIBRARY_VERSION, "kind": kind, "from": content_digest(built), **parts}
    key = _cache.entry_key(f"{request.package}-{request.target.key}-{kind}", parts)
    builds = _cache.private_dir(request.options.cache_dir / _cache.BUILDS)
    final = builds / key
    if not request.options.rebuild:
        info = _cache.use(final)
        if info is not None:
            return Built(request, final, built.seconds, cached=built.cached, info=info)
    with work_dir(builds, key) as work:
        folder = work / _cache.ASSET
        folder.mkdir()
        said = fill(folder) or {}
        _asset.normalize_modes(folder)
        files = _cache.manifest(folder)
        shutil.copyfile(built.sbom, work / _sbom.FILE)
        info = {
            **{k: v for k, v in built.info.items() if k not in ("manifest", "slim")},
            # From the build it was derived from, through a split: the build a function records (cdk-uv verify).
            "derived": {"kind": kind, "from": (built.info.get("derived") or {}).get("from") or built.entry.name},
            "beside": {_sbom.FILE: hashlib.sha256(built.sbom.read_bytes()).hexdigest()},
            "files": len(files),
            "bytes": sum(max(size, 0) for size, _, _ in files.values()),
            **said,
            "manifest": files,
        }
        _cache.write_info(work, info)
        final = _cache.publish(work, final, rebuild=request.options.rebuild)
    return Built(request, final, built.seconds, cached=False, info=_cache.read_info(final) or info)


def _compile(built: Built, folder: Path, runner: Runner) -> None:
    uv = Uv.locate(built.request.options.uv, runner)
    _asset.compile_bytecode(folder, uv.path, runner, built.request.failure, recorded_at=LAYER_ROOT)


def _files(site: Path) -> list[str]:
    return sorted(p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file() or p.is_symlink())


def _source_of(rel: str) -> str | None:
    """``a/b.py`` for ``a/__pycache__/b.cpython-312.pyc``; None for any other file."""
    parent, _, name = rel.rpartition("/")
    if not name.endswith(".pyc") or posixpath.basename(parent) != "__pycache__":
        return None
    folder = posixpath.dirname(parent)
    return posixpath.join(folder, name.split(".", 1)[0] + ".py") if folder else name.split(".", 1)[0] + ".py"


def _copy(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, dest, follow_symlinks=False)
