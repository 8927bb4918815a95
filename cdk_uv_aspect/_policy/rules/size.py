"""uv-asset-size: the unzipped asset and the function's layers fit Lambda's 250 MB limit, with a warning below it.

Over the limit, the error says what each way out would give, measured on the built folders: slimming
(``UvOptions(slim=...)``, see ``_slim.measure``), a dependencies layer (layers count toward the same limit),
and an image function (10 GB).
"""

from __future__ import annotations

import os
from pathlib import Path

from ... import _sbom, _slim
from ..._errors import UvError
from ..._lambda import LAYER_FOLDER
from ..._names import normalize
from ..._target import Target, target_of
from ..facts import FunctionFacts
from ..options import LAMBDA_UNZIPPED_LIMIT, PolicyOptions
from ..rule import Compliant, NonCompliant, NotApplicable, Rule, Verdict

MIB = 1024 * 1024
IMAGE_LIMIT = 10 * 1024 * MIB  # Lambda's limit for a container image, uncompressed, layers included


def check(facts: FunctionFacts, options: PolicyOptions) -> Verdict:
    if facts.package_type == "Image":
        return NotApplicable("a container image (Lambda's limit for images is 10 GB)")
    if facts.asset_dir is None:
        return NotApplicable("no uv-built asset to inspect")
    own = _size(facts.asset_dir)
    layers = sum(_size(folder) for folder in facts.layer_dirs)
    total = own + layers
    size = f"{total / MIB:.1f} MiB unzipped"
    if facts.layer_dirs:
        count = len(facts.layer_dirs)
        size += f" ({own / MIB:.1f} MiB of its own code, {layers / MIB:.1f} MiB in {count} layer{'s' * (count > 1)})"
    if facts.unmeasured_layers:
        size += f", and {facts.unmeasured_layers} layer(s) defined outside this app, not counted"
    if total > LAMBDA_UNZIPPED_LIMIT:
        over = f"{size}, over Lambda's limit of 250 MiB (262,144,000 bytes, layers included)"
        return NonCompliant(f"{over}. {ways_out(facts, own, total)}")
    if total > options.size_warning_mb * MIB:
        return NonCompliant(
            f"{size}, over the warning threshold of {options.size_warning_mb:g} MiB "
            "(Lambda's limit is 250 MiB, layers included)",
            level="warning",
        )
    return Compliant(size)


def ways_out(facts: FunctionFacts, own: int, total: int) -> str:
    """What slimming, a dependencies layer and an image function would give this function, measured."""
    assert facts.asset_dir is not None
    said = []
    target = _target(facts)
    slim = facts.build.slim if facts.build else None
    # The folders slimming would apply to: the function's own, and the layers this library built.
    folders = [(facts.asset_dir, False)] + [(f, True) for f in facts.layer_dirs if _local(f) is not None]
    if target is not None and slim and slim.get("mode") == "bytecode-only":
        said.append(f"it is slimmed already (from {slim.get('bytesBefore', 0) / MIB:.1f} MiB), bytecode only")
    elif target is not None:
        measured = [
            _slim.measure(folder / LAYER_FOLDER if layer else folder, _local(folder) or _own(facts), target)
            for folder, layer in folders
        ]
        saved = sum(m.bytes - m.slim for m in measured)
        only = sum(m.bytes - m.bytecode_only for m in measured)
        parts = [
            f"{what} {sum(getattr(m, key) for m in measured) / MIB:.1f} MiB"
            for what, key in (
                ("test suites", "tests"),
                ("unread files", "unreachable"),
                ("debug symbols", "debug_symbols"),
            )
        ]
        if slim:
            said.append(f"it is slimmed already (from {slim.get('bytesBefore', 0) / MIB:.1f} MiB)")
        else:
            said.append(f"slim=True: {_fits(total - saved)} (leaves out {', '.join(parts)})")
        said.append(
            f"slim='bytecode-only': {_fits(total - only)} (third-party sources too, "
            f"{sum(m.sources for m in measured) / MIB:.1f} MiB)"
        )
        if not any(layer for _, layer in folders):
            third = measured[0].third_party
            said.append(
                f"dependencies_layer=True: {(own - third) / MIB:.1f} MiB in its zip and {third / MIB:.1f} MiB in a "
                f"layer, {total / MIB:.1f} MiB together: layers count toward the same limit, so alone it does not fit"
            )
    image = "fits" if total <= IMAGE_LIMIT else "over it too"
    said.append(
        f"an image function (DockerImageFunction, code=uv_image_code(...); Lambda allows 10 GB): "
        f"{total / MIB:.1f} MiB of code in its image, {image}"
    )
    return "What each way out gives, measured: " + "; ".join(said) + "."


def _fits(size: int) -> str:
    return f"{size / MIB:.1f} MiB, " + ("fits" if size <= LAMBDA_UNZIPPED_LIMIT else "still over")


def _target(facts: FunctionFacts) -> Target | None:
    try:
        return target_of(facts.runtime or "", facts.architecture)
    except UvError:
        return None


def _local(folder: Path) -> set[str] | None:
    """The workspace's own distributions in a folder this library built (its SBOM is beside it)."""
    return _sbom.workspace_packages(folder.parent / _sbom.FILE)


def _own(facts: FunctionFacts) -> set[str]:
    return {normalize(facts.package)} if facts.package else set()


def _size(folder: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        total += sum(os.lstat(os.path.join(dirpath, name)).st_size for name in files)
    return total


RULE = Rule(
    id="uv-asset-size",
    severity="error",
    title="The asset fits Lambda's size limit",
    explanation="A function's unzipped code, layers included, must fit in 250 MiB (262,144,000 bytes): "
    "an error above it, a warning above size_warning_mb (200 MiB by default). Deploying a larger "
    "function fails in CloudFormation, late. Over the limit, the error says what slimming, a dependencies "
    "layer and an image function would give, measured on the built folders.",
    fix="slim the asset (UvOptions(slim=True), or slim='bytecode-only'), drop dependencies the function does not "
    "use (check `uv tree --package <package>`), leave files out with UvOptions(exclude=[...]), or move the "
    "function to a container image (10 GB); a dependencies layer does not help: layers count toward the limit",
    check=check,
)
