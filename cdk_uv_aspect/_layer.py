"""Layers: a marked ``LayerVersion`` built as a Python layer, and a function's third-party dependencies put
into a layer the aspect makes and attaches (``UvOptions(dependencies_layer=True)``).

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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3_assets as s3_assets
from constructs import IConstruct, Node
from packaging.tags import Tag, parse_tag

from . import _asset, _cache, _sbom, _state
from ._build import BuildRequest, Built
from ._errors import MarkerError, TargetError, UvError
from ._files import work_dir
from ._lambda import ARCHITECTURES, LAYER_FOLDER, LAYER_LIMIT, LAYER_ROOT
from ._marker import BUILT, Marker, markers_of, normalize
from ._options import UvOptions
from ._runner import Runner
from ._swap import ASSET_ID, write_sbom
from ._target import Target, target_of
from ._uv import Uv
from ._version import LIBRARY_VERSION
from ._workspace import Workspace

DEPENDENCIES_ID = "UvDependencies"  # the ids of the layers the aspect makes start with this


# --- deciding ---------------------------------------------------------------------------------------


def wants_layer(marker: Marker, options: UvOptions, *, image: bool, edge: bool) -> bool:
    """Whether a function's third-party dependencies go to a layer: its marker says, else the options.

    Image and Lambda@Edge functions can't have layers: the options' setting passes them by, a marker asking
    for it is refused."""
    wanted = marker.dependencies_layer if marker.dependencies_layer is not None else options.dependencies_layer
    if wanted and (image or edge) and marker.dependencies_layer:
        what = "an image function" if image else "a Lambda@Edge function"
        raise MarkerError(
            f"the uv marker asks for dependencies_layer, but {what} can't have layers",
            package=marker.package,
            fix='drop "dependencies_layer" from the marker: its dependencies stay in its '
            + ("image" if image else "zip"),
        )
    return wanted and not (image or edge)


# --- a marked LayerVersion --------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedLayer:
    """A marked ``LayerVersion``, and what to build for it: one request per architecture it lists."""

    layer: lambda_.LayerVersion
    node: Node
    requests: tuple[BuildRequest, ...]
    others: tuple[Target, ...]  # the runtimes it lists besides the one it is built for: its wheels must load there


def find_marked_layers(constructs: Iterable[IConstruct]) -> list[tuple[lambda_.LayerVersion, list[Any]]]:
    """Every ``LayerVersion`` among ``constructs`` that carries a uv marker, with its markers' data."""
    found = []
    for construct in constructs:
        if isinstance(construct, lambda_.LayerVersion):
            markers = markers_of(construct.node)
            if markers:
                found.append((construct, markers))
    return found


def plan_layer(
    layer: lambda_.LayerVersion, markers: list[Any], options: UvOptions, workspace: Workspace
) -> PlannedLayer:
    """What to build for a marked layer: its package for its compatible runtimes and architectures."""
    node = layer.node
    package = None
    try:
        if len({json.dumps(m, sort_keys=True, default=str) for m in markers}) > 1:
            raise MarkerError(
                f"the layer has {len(markers)} uv markers that disagree, and a layer is built from one package",
                fix="keep one marker on the layer",
            )
        marker = Marker.parse(markers[0])
        package = marker.package
        extra = [k for k in ("dockerfile", "build_args", "base_digest") if getattr(marker, k)]
        extra += ["dependencies_layer"] if marker.dependencies_layer is not None else []
        if extra:
            raise MarkerError(
                f"a layer's uv marker takes the package, its extras and groups, and python; it has {', '.join(extra)}",
                package=package,
                fix='keep {"package": ..., "extras": [...], "groups": [...], "python": "3.12"} on a layer',
            )
        runtimes = [r.name for r in layer.compatible_runtimes or []]
        cfn = node.default_child
        assert isinstance(cfn, lambda_.CfnLayerVersion)
        archs = list(cfn.compatible_architectures or []) or ["x86_64"]  # Lambda's default
        targets = _layer_targets(runtimes, archs, marker.python, package)
        found = workspace.package(package)
        requests = tuple(
            BuildRequest.create(workspace, found.name, t, options, extras=marker.extras, groups=marker.groups)
            for t in targets
        )
        chosen = (targets[0].python, targets[0].os)
        listed = [target_of(r, a) for r in runtimes for a in dict.fromkeys(archs)]
        others = tuple(t for t in listed if (t.python, t.os) != chosen)
    except UvError as exc:
        raise exc.with_constructs([node.path], package=package) from None
    return PlannedLayer(layer, node, requests, others)


def _layer_targets(runtimes: list[str], archs: list[str], python: str | None, package: str) -> list[Target]:
    """One target per architecture, for the one Python and Amazon Linux of the layer's runtimes (or ``python``)."""
    if not runtimes:
        raise TargetError(
            "the layer lists no compatible runtimes, so no Python version and Amazon Linux can be chosen for its "
            "wheels",
            package=package,
            fix="give the LayerVersion compatible_runtimes=[Runtime.PYTHON_3_12] (the runtimes of the functions "
            "using it)",
        )
    targets = [target_of(r, a) for r in runtimes for a in archs[:1]]  # each runtime checked: known, Python, not retired
    for arch in archs:
        if arch not in ARCHITECTURES:
            target_of(runtimes[0], arch)  # the unknown architecture, refused by name
    spans = {(t.python, t.os.name) for t in targets}
    if python is not None:
        chosen = [t for t in targets if t.python == python]
        if not chosen:
            raise TargetError(
                f"the layer's marker names Python {python}, which none of its compatible runtimes "
                f"({', '.join(runtimes)}) runs",
                package=package,
                fix="name one of its runtimes' Python versions in the marker's python, or add that runtime",
            )
        first = chosen[0]
    elif len(spans) > 1:
        said = ", ".join(f"{t.runtime} (Python {t.python}, {t.os.name})" for t in targets)
        raise TargetError(
            f"the layer's compatible runtimes span several Python versions or Amazon Linux versions ({said}): "
            "wheels are chosen for one Python and one glibc, and compiled wheels load on that Python only",
            package=package,
            target=", ".join(runtimes),
            fix="make one layer per Python version, or name the one to build for in the marker: "
            'mark_package(layer, "<package>", python="3.12") (its wheels are then checked to load on every '
            "runtime listed)",
        )
    else:
        first = targets[0]
    return [Target(first.python, ARCHITECTURES[a].name) for a in dict.fromkeys(archs)]


def build_layer(planned: PlannedLayer, builds: dict[BuildRequest, Built], runner: Runner) -> Built:
    """The layer folder of a marked layer, from its builds (one per architecture): the same folder for each
    architecture, and wheels that load on each runtime it lists."""
    try:
        layers = [layer_folder(builds[r], runner) for r in planned.requests]
        first = layers[0]
        for request, other in zip(planned.requests[1:], layers[1:], strict=True):
            if content_digest(other) != content_digest(first):
                native = sorted(set(_native(other.asset_dir)) | set(_native(first.asset_dir)))
                raise TargetError(
                    f"the layer lists architectures {', '.join(r.target.arch for r in planned.requests)}, and its "
                    f"packages differ between them (compiled code: {', '.join(native[:5]) or 'none found'}), so one "
                    "zip can't serve both",
                    package=request.package,
                    target=request.target,
                    fix="make one layer per architecture (compatible_architectures=[Architecture.ARM_64] on one, "
                    "X86_64 on the other)",
                )
        refused = unloadable(first.asset_dir / LAYER_FOLDER, planned.others)
        if refused:
            raise TargetError(
                "the layer's wheels don't all load on every runtime it lists: " + "; ".join(refused),
                package=first.request.package,
                target=first.request.target,
                fix="make one layer per Python version (or Amazon Linux version), or pin versions of these packages "
                "that publish wheels for every runtime the layer lists, and run `uv lock`",
            )
    except UvError as exc:
        raise exc.with_constructs([planned.node.path]) from None
    return first


def swap_layer(planned: PlannedLayer, built: Built) -> None:
    """Point a marked layer's content at its built folder, and record the build on it (``uv:build``)."""
    layer, node = planned.layer, planned.node
    asset = s3_assets.Asset(layer, ASSET_ID, path=str(built.asset_dir), deploy_time=True)
    cfn = node.default_child
    assert isinstance(cfn, lambda_.CfnLayerVersion)
    cfn.content = lambda_.CfnLayerVersion.ContentProperty(s3_bucket=asset.s3_bucket_name, s3_key=asset.s3_object_key)
    asset.add_resource_metadata(cfn, "Content")
    _state.SWAPPED.add(_state.jsii_ref(layer))  # a layer made with code=UvCode() passes its check
    _state.BUILT_FOLDERS[asset.asset_hash] = built.asset_dir
    node.add_metadata(BUILT, _record(built, asset.asset_hash, write_sbom(layer, built), asset.node.path))


# --- a function's dependencies in a layer ----------------------------------------------------------


@dataclass
class DependencyLayers:
    """The layers the aspect made, by stack, target and content: functions that share them share one."""

    made: dict[tuple[str, str, str], lambda_.LayerVersion] = field(default_factory=dict)
    splits: dict[Path, tuple[Built, Built | None]] = field(default_factory=dict)  # build entry -> split

    def attach(self, function: lambda_.Function, node: Node, stack_ref: str, built: Built, runner: Runner) -> Built:
        """Put ``built``'s third-party packages into a layer attached to ``function``; return its code's build
        (the workspace's packages only). A build with no third-party package is returned as it is."""
        try:
            if built.entry not in self.splits:
                self.splits[built.entry] = split(built, runner)
            code, layer = self.splits[built.entry]
            if layer is None:
                return built
            digest = content_digest(layer)
            target = built.request.target
            key = (stack_ref, target.key, digest)
            made = self.made.get(key)
            if made is None:
                stack = Stack.of(function)
                made = lambda_.LayerVersion(
                    stack,
                    f"{DEPENDENCIES_ID}-{target.key}-{digest[:16]}",
                    code=lambda_.Code.from_asset(str(layer.asset_dir)),
                    compatible_runtimes=[function.runtime],
                    compatible_architectures=[function.architecture],
                    description=f"Third-party Python packages for {target.runtime} {target.arch} (cdk-uv-aspect)",
                )
                asset = made.node.find_child("Code")
                assert isinstance(asset, s3_assets.Asset)
                _state.BUILT_FOLDERS[asset.asset_hash] = layer.asset_dir
                made.node.add_metadata(BUILT, _record(layer, asset.asset_hash, None, asset.node.path))
                self.made[key] = made
            try:
                function.add_layers(made)
            except RuntimeError as exc:  # the CDK's own checks, through jsii: more than LAYER_LIMIT layers
                raise TargetError(
                    f"the layer of its dependencies can't be added to the function: {exc}",
                    fix=f"keep its dependencies in its zip (mark it with {{'dependencies_layer': False}}): Lambda "
                    f"allows {LAYER_LIMIT} layers per function",
                ) from None
        except UvError as exc:
            raise exc.with_constructs([node.path], package=built.request.package, target=built.request.target) from None
        return code


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

    return _derived(built, "code", code), _derived(built, "deps-layer", layer)


def layer_folder(built: Built, runner: Runner) -> Built:
    """``built`` as a layer: everything below ``python/``, its bytecode recorded under ``/opt/python``."""

    def fill(folder: Path) -> None:
        for rel in _files(site):
            if "__pycache__" not in rel.split("/"):
                _copy(site / rel, folder / LAYER_FOLDER / rel)
        if built.request.options.bytecode:
            _compile(built, folder / LAYER_FOLDER, runner)

    site = built.asset_dir
    return _derived(built, "layer", fill)


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


# --- wheels that load on a runtime ------------------------------------------------------------------


def unloadable(site: Path, targets: Iterable[Target]) -> list[str]:
    """Which installed distributions of ``site`` have no wheel tag that loads on each of ``targets``."""
    refused = []
    for dist in sorted(site.glob("*.dist-info")):
        wheel = dist / "WHEEL"
        if not wheel.is_file():
            continue
        tags = [line.split(":", 1)[1].strip() for line in wheel.read_text().splitlines() if line.startswith("Tag:")]
        for target in targets:
            if tags and not any(_loads(tag, target) for text in tags for tag in parse_tag(text)):
                refused.append(f"{dist.name.removesuffix('.dist-info')} ({', '.join(tags)}) on {target}")
    return refused


_LEGACY_GLIBC: dict[str, tuple[int, ...]] = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


def _loads(tag: Tag, target: Target) -> bool:
    major, minor = (int(n) for n in target.python.split("."))
    interpreter, abi, platform = tag.interpreter, tag.abi, tag.platform
    if platform != "any":
        arch = ARCHITECTURES[target.arch].machine
        if not platform.endswith("_" + arch):
            return False
        kind = platform.removesuffix("_" + arch)
        glibc = tuple(int(n) for n in target.glibc.split("."))
        if kind in _LEGACY_GLIBC:
            needed = _LEGACY_GLIBC[kind]
        elif kind.startswith("manylinux_"):
            needed = tuple(int(n) for n in kind.split("_")[1:3])
        else:
            return False  # musllinux, linux (not portable)
        if needed > glibc:
            return False
    version = interpreter[2:]
    if interpreter.startswith("py"):
        return version in ("", str(major), f"{major}{minor}") or (len(version) > 1 and int(version[1:]) <= minor)
    if not interpreter.startswith("cp"):
        return False
    if abi == "abi3" or abi == "none":
        return version.startswith(str(major)) and int(version[1:] or 0) <= minor
    return version == f"{major}{minor}"


def _native(site: Path) -> list[str]:
    return [p.relative_to(site).as_posix() for p in site.rglob("*.so")]


# --- derived folders in the build cache -------------------------------------------------------------


def _derived(built: Built, kind: str, fill: Callable[[Path], None]) -> Built:
    """A folder made from ``built`` by ``fill``, as an entry of the build cache keyed by ``built``'s content."""
    request = built.request
    parts = {
        "library": LIBRARY_VERSION,
        "kind": kind,
        "from": content_digest(built),
        "bytecode": request.options.bytecode,
    }
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
        fill(folder)
        _asset.normalize_modes(folder)
        files = _cache.manifest(folder)
        shutil.copyfile(built.sbom, work / _sbom.FILE)
        info = {
            **{k: v for k, v in built.info.items() if k != "manifest"},
            "derived": {"kind": kind, "from": built.entry.name},
            "beside": {_sbom.FILE: hashlib.sha256(built.sbom.read_bytes()).hexdigest()},
            "files": len(files),
            "bytes": sum(max(size, 0) for size, _, _ in files.values()),
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


def _record(built: Built, asset_hash: str, sbom: str | None, asset_path: str) -> dict[str, Any]:
    return {
        "package": built.request.package,
        "target": built.request.target.key,
        "layer": True,
        "extras": list(built.request.extras),
        "groups": list(built.request.groups),
        "sbom": sbom,
        "assetHash": asset_hash,
        "asset": asset_path,
        "files": built.info["files"],
        "bytes": built.info["bytes"],
        "cached": built.cached,
    }
