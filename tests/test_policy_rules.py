"""Each policy rule on its own: facts in, result out. Asset folders are crafted here (a wrong-architecture
library, an oversized asset); tests/test_policy.py shows the same rules on real builds."""

from __future__ import annotations

import datetime
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from cdk_uv_aspect._emulation import host_architecture
from cdk_uv_aspect._policy import engine
from cdk_uv_aspect._policy.facts import FunctionFacts
from cdk_uv_aspect._policy.options import LAMBDA_UNZIPPED_LIMIT, PolicyOptions
from cdk_uv_aspect._policy.rule import Compliant, NonCompliant, NotApplicable, Rule
from cdk_uv_aspect._policy.rules import (
    edge,
    handler,
    init_budget,
    native,
    requires_python,
    runtime,
    runtime_sdk,
    size,
    uv_built,
)
from cdk_uv_aspect._record import BuildRecord

OPTIONS = PolicyOptions()
X86_64, AARCH64 = 62, 183


def elf(machine: int) -> bytes:
    """The first bytes of a 64-bit little-endian shared object for ``machine`` (ELF e_machine)."""
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    return ident + (3).to_bytes(2, "little") + machine.to_bytes(2, "little") + bytes(44)


def asset(tmp_path: Path, files: dict[str, str | bytes]) -> Path:
    root = tmp_path / "asset"
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    root.mkdir(exist_ok=True)
    return root


def facts(**changes: Any) -> FunctionFacts:
    base = FunctionFacts(
        path="Stack/Fn",
        kind="Function",
        runtime="python3.12",
        architecture="x86_64",
        handler="app.handler.main",
        package="app",
        build=BuildRecord("app", "python3.12-x86_64", "abc", requires_python=">=3.11"),
        swapped=True,
        asset_dir=None,
        today=datetime.date(2026, 11, 27),
    )
    return replace(base, **changes)


# --- uv-built -----------------------------------------------------------------------------------------


def test_uv_built_compliance_marked_and_swapped():
    """A marked function whose code is the uv-built asset passes."""
    assert isinstance(uv_built.check(facts(), OPTIONS), Compliant)


def test_uv_built_compliance_image_function_with_a_build_record():
    """A container image function has no zip asset: the bundling aspect's record is what counts."""
    image = facts(runtime=None, handler=None, package_type="Image", swapped=False)
    assert isinstance(uv_built.check(image, OPTIONS), Compliant)
    assert isinstance(uv_built.check(replace(image, build=None), OPTIONS), NonCompliant)


def test_uv_built_noncompliance_1_unmarked_python_function():
    """A Python function without the marker fails."""
    result = uv_built.check(facts(package=None, build=None, swapped=False), OPTIONS)
    assert isinstance(result, NonCompliant) and "without the uv marker" in result.message


def test_uv_built_noncompliance_2_marked_but_code_replaced():
    """Marked, but its code is not the built asset (no aspect reached it, or something replaced it)."""
    result = uv_built.check(facts(swapped=False), OPTIONS)
    assert isinstance(result, NonCompliant) and "not the asset" in result.message


def test_uv_built_noncompliance_3_raw_cfn_function():
    """A raw CfnFunction with a Python runtime can't be uv-built: it fails."""
    result = uv_built.check(facts(kind="CfnFunction", package=None, build=None, swapped=False), OPTIONS)
    assert isinstance(result, NonCompliant) and "raw CfnFunction" in result.message


def test_uv_built_not_applicable_to_other_runtimes_and_cdk_internal_functions():
    """Node functions are out of scope; the CDK's own functions are exempt unless asked for."""
    assert isinstance(uv_built.check(facts(runtime="nodejs22.x", package=None), OPTIONS), NotApplicable)
    internal = facts(package=None, build=None, swapped=False, internal="aws:cdk:is-custom-resource-handler-singleton")
    assert isinstance(uv_built.check(internal, OPTIONS), NotApplicable)
    assert isinstance(uv_built.check(internal, PolicyOptions(include_cdk_internal=True)), NonCompliant)


def test_uv_built_not_applicable_when_the_stack_needs_no_bundling():
    """`cdk ls`: marked functions are not built, and that is not a finding."""
    result = uv_built.check(facts(build=None, swapped=False, bundling_required=False), OPTIONS)
    assert isinstance(result, NotApplicable)


# --- uv-handler ---------------------------------------------------------------------------------------


def test_uv_handler_compliance_module_defines_function(tmp_path: Path):
    """src/app/handler.py defining main(): passes, also for packages, aliases and conditional definitions."""
    root = asset(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/handler.py": "import json\n\ndef main(event, context):\n    return json.dumps(event)\n",
            "app/alias.py": "from app.handler import main as entry\n",
            "app/cond.py": "try:\n    import orjson\n    def go(e, c): ...\nexcept ImportError:\n    go = None\n",
            "root_module.py": "class Handler:\n    pass\nhandle = Handler()\n",
            "pkg/sub/__init__.py": "def run(e, c): ...\n",
        },
    )
    for name in (
        "app.handler.main",
        "app.alias.entry",
        "app.cond.go",
        "root_module.handle",
        "pkg.sub.run",
        "app/handler.main",
    ):
        assert isinstance(handler.check(facts(handler=name, asset_dir=root), OPTIONS), Compliant), name


def test_uv_handler_noncompliance_1_missing_module(tmp_path: Path):
    """A misspelled module is found at synth, not on the first invocation."""
    root = asset(tmp_path, {"app/handler.py": "def main(e, c): ...\n"})
    result = handler.check(facts(handler="app.handlr.main", asset_dir=root), OPTIONS)
    assert isinstance(result, NonCompliant) and "no module app.handlr" in result.message


def test_uv_handler_noncompliance_2_module_lacks_the_function(tmp_path: Path):
    """The module is there but defines no such function."""
    root = asset(tmp_path, {"app/handler.py": "def main(e, c): ...\n"})
    result = handler.check(facts(handler="app.handler.mian", asset_dir=root), OPTIONS)
    assert isinstance(result, NonCompliant) and "defines no 'mian'" in result.message


def test_uv_handler_noncompliance_3_not_module_dot_function_or_unparsable(tmp_path: Path):
    """A handler without a dot, or a module with a syntax error, fails."""
    root = asset(tmp_path, {"main.py": "def handler(e, c)\n    return 1\n"})
    assert isinstance(handler.check(facts(handler="main", asset_dir=root), OPTIONS), NonCompliant)
    # python3.11: this machine's Python is at least that new, so a syntax error is the module's fault.
    result = handler.check(facts(handler="main.handler", runtime="python3.11", asset_dir=root), OPTIONS)
    assert isinstance(result, NonCompliant) and "does not parse" in result.message


def test_uv_handler_never_imports_the_module(tmp_path: Path):
    """Reading is static: a module that would raise on import is still judged by its names."""
    root = asset(tmp_path, {"app.py": "raise SystemExit('imported!')\ndef main(e, c): ...\n"})
    assert isinstance(handler.check(facts(handler="app.main", asset_dir=root), OPTIONS), Compliant)


def test_uv_handler_accepts_what_it_can_not_read(tmp_path: Path):
    """Star imports, a module __getattr__ and compiled modules can define anything: not a failure."""
    root = asset(
        tmp_path,
        {
            "star.py": "from os.path import *\n",
            "lazy.py": "def __getattr__(name): ...\n",
            "fast.cpython-312-x86_64-linux-gnu.so": elf(X86_64),
        },
    )
    for name in ("star.join", "lazy.main", "fast.main"):
        assert isinstance(handler.check(facts(handler=name, asset_dir=root), OPTIONS), Compliant), name


# --- uv-native-libs -----------------------------------------------------------------------------------


def test_uv_native_libs_compliance_matching_elf_and_abi(tmp_path: Path):
    """x86_64 ELF extensions for CPython 3.12 (and abi3, and bundled .so.N libraries) pass."""
    root = asset(
        tmp_path,
        {
            "orjson/orjson.cpython-312-x86_64-linux-gnu.so": elf(X86_64),
            "cryptography/_rust.abi3.so": elf(X86_64),
            "numpy.libs/libgfortran-040039e1.so.5.0.0": elf(X86_64),
        },
    )
    result = native.check(facts(asset_dir=root), OPTIONS)
    assert isinstance(result, Compliant) and "3 native libraries" in result.note


def test_uv_native_libs_noncompliance_1_wrong_architecture(tmp_path: Path):
    """An aarch64 library in an x86_64 function fails, naming the file and both machines."""
    root = asset(tmp_path, {"orjson/orjson.abi3.so": elf(AARCH64)})
    result = native.check(facts(asset_dir=root), OPTIONS)
    assert isinstance(result, NonCompliant)
    assert "orjson/orjson.abi3.so: built for aarch64, the function runs x86_64" in result.message


def test_uv_native_libs_noncompliance_2_wrong_python_abi(tmp_path: Path):
    """A CPython 3.11 extension in a python3.12 function fails."""
    root = asset(tmp_path, {"fast/_speed.cpython-311-x86_64-linux-gnu.so": elf(X86_64)})
    result = native.check(facts(asset_dir=root), OPTIONS)
    assert isinstance(result, NonCompliant) and "CPython 3.11, the function runs 3.12" in result.message


def test_uv_native_libs_noncompliance_3_not_linux(tmp_path: Path):
    """A macOS (Mach-O) library, or an extension tagged for another machine, fails."""
    root = asset(
        tmp_path,
        {
            "mac/_speed.cpython-312-darwin.so": b"\xcf\xfa\xed\xfe" + bytes(60),
            "arm/_speed.cpython-312-aarch64-linux-gnu.so": elf(X86_64),
        },
    )
    result = native.check(facts(asset_dir=root), OPTIONS)
    assert isinstance(result, NonCompliant) and result.message.startswith("2 native libraries")
    assert "Mach-O" in result.message and "tagged aarch64" in result.message


def test_uv_native_libs_compliance_without_native_code(tmp_path: Path):
    """Pure Python: nothing to check, a pass."""
    root = asset(tmp_path, {"app/handler.py": "def main(e, c): ...\n"})
    assert native.check(facts(asset_dir=root), OPTIONS) == Compliant("no native libraries")


# --- uv-asset-size ------------------------------------------------------------------------------------


def sparse(root: Path, rel: str, size_bytes: int) -> None:
    """A file of ``size_bytes`` that takes no disk space."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        f.truncate(size_bytes)


def test_uv_asset_size_compliance_small_asset(tmp_path: Path):
    """A small asset passes and says its size."""
    root = asset(tmp_path, {"app.py": "x = 1\n"})
    result = size.check(facts(asset_dir=root), OPTIONS)
    assert isinstance(result, Compliant) and "MiB unzipped" in result.note


def test_uv_asset_size_not_applicable_to_images(tmp_path: Path):
    """Images have Lambda's 10 GB limit, not the 250 MiB of zip code."""
    root = asset(tmp_path, {})
    sparse(root, "blob.bin", LAMBDA_UNZIPPED_LIMIT + 1)
    assert isinstance(size.check(facts(asset_dir=root, package_type="Image"), OPTIONS), NotApplicable)


def test_uv_asset_size_noncompliance_1_over_lambda_limit(tmp_path: Path):
    """Over 250 MiB unzipped: an error."""
    root = asset(tmp_path, {"app.py": "x = 1\n"})
    sparse(root, "big/blob.bin", LAMBDA_UNZIPPED_LIMIT)
    result = size.check(facts(asset_dir=root), OPTIONS)
    assert isinstance(result, NonCompliant) and result.level is None  # the rule's severity: error
    assert "over Lambda's limit" in result.message


def test_uv_asset_size_noncompliance_2_over_warning_threshold(tmp_path: Path):
    """Over the warning threshold but under the limit: a warning; the threshold is an option."""
    root = asset(tmp_path, {})
    sparse(root, "blob.bin", 210 * 1024 * 1024)
    result = size.check(facts(asset_dir=root), OPTIONS)
    assert isinstance(result, NonCompliant) and result.level == "warning"
    assert isinstance(size.check(facts(asset_dir=root), PolicyOptions(size_warning_mb=220)), Compliant)


def test_uv_asset_size_noncompliance_3_counts_the_function_layers(tmp_path: Path):
    """150 MiB of code and a 110 MiB layer: over Lambda's limit together, though each is under it."""
    root = asset(tmp_path, {})
    sparse(root, "blob.bin", 150 * 1024 * 1024)
    layer = tmp_path / "layer"
    sparse(layer, "python/big/blob.bin", 110 * 1024 * 1024)
    assert isinstance(size.check(facts(asset_dir=root), OPTIONS), Compliant)
    result = size.check(facts(asset_dir=root, layer_dirs=(layer,), unmeasured_layers=1), OPTIONS)
    assert isinstance(result, NonCompliant) and result.level is None
    assert "260.0 MiB unzipped (150.0 MiB of its own code, 110.0 MiB in 1 layer)" in result.message
    assert "1 layer(s) defined outside this app, not counted" in result.message


def test_uv_asset_size_noncompliance_4_says_what_each_way_out_gives_measured(tmp_path: Path):
    """Over the limit, the error says what slim=True and slim='bytecode-only' would leave (measured: test suites,
    unread files, sources), that a dependencies layer moves the third-party bytes into a layer counted all the
    same, and that an image function fits."""
    root = asset(
        tmp_path,
        {
            "app/handler.py": "def main(event, context):\n    return 1\n",
            "app-0.1.0.dist-info/RECORD": "app/handler.py,,\n",
            "bulky/__init__.py": "",
            "bulky/__pycache__/big.cpython-312.pyc": b"\0" * 1024,
            "bulky-1.0.dist-info/RECORD": "bulky/__init__.py,,\nbulky/core.bin,,\nbulky/big.py,,\n"
            "bulky/__init__.pyi,,\nbulky/tests/data.bin,,\n",
        },
    )
    mib = 1024 * 1024
    sparse(root, "bulky/core.bin", 200 * mib)
    sparse(root, "bulky/big.py", 2 * mib)
    sparse(root, "bulky/__init__.pyi", 3 * mib)
    sparse(root, "bulky/tests/data.bin", 55 * mib)
    result = size.check(facts(asset_dir=root), OPTIONS)
    assert isinstance(result, NonCompliant) and result.level is None
    message = result.message
    assert "260.0 MiB unzipped, over Lambda's limit" in message
    assert (
        "slim=True: 202.0 MiB, fits (leaves out test suites 55.0 MiB, unread files 3.0 MiB, debug symbols 0.0 MiB)"
        in message
    )
    assert "slim='bytecode-only': 200.0 MiB, fits (third-party sources too, 2.0 MiB)" in message
    assert "dependencies_layer=True: 0.0 MiB in its zip and 260.0 MiB in a layer, 260.0 MiB together" in message
    assert "layers count toward the same limit" in message
    assert "an image function (DockerImageFunction" in message and "260.0 MiB of code in its image, fits" in message
    slimmed = replace(facts().build, slim={"mode": "slim", "bytesBefore": 300 * mib})  # type: ignore[type-var]
    again = size.check(facts(asset_dir=root, build=slimmed), OPTIONS)
    assert isinstance(again, NonCompliant) and "it is slimmed already (from 300.0 MiB)" in again.message
    assert "slim=True:" not in again.message and "slim='bytecode-only': 200.0 MiB, fits" in again.message


# --- uv-requires-python -------------------------------------------------------------------------------


def test_uv_requires_python_compliance_admitted():
    """requires-python >=3.11 admits python3.12; no requires-python admits anything."""
    assert isinstance(requires_python.check(facts(), OPTIONS), Compliant)
    no_spec = facts(build=BuildRecord("app", "python3.12-x86_64", "abc"))
    assert isinstance(requires_python.check(no_spec, OPTIONS), Compliant)


def test_uv_requires_python_noncompliance_1_runtime_too_old():
    """python3.10 for a package that requires >=3.11 fails."""
    result = requires_python.check(facts(runtime="python3.10"), OPTIONS)
    assert isinstance(result, NonCompliant) and "requires Python >=3.11" in result.message


def test_uv_requires_python_noncompliance_2_invalid_specifier():
    """A specifier that can't be read fails rather than passing silently."""
    result = requires_python.check(
        facts(build=BuildRecord("app", "python3.12-x86_64", "abc", requires_python=">=three")), OPTIONS
    )
    assert isinstance(result, NonCompliant)


# --- uv-runtime-deprecated ----------------------------------------------------------------------------


def test_uv_runtime_deprecated_compliance_supported_runtime():
    """python3.12 on 2026-11-27 (deprecated 2028-10-31) passes; an unknown newer runtime passes."""
    assert isinstance(runtime.check(facts(), OPTIONS), Compliant)
    assert isinstance(runtime.check(facts(runtime="python3.15"), OPTIONS), Compliant)


def test_uv_runtime_deprecated_noncompliance_1_deprecated():
    """python3.9 and python3.10 are deprecated by 2026-11-27."""
    for name, date in (("python3.9", "2025-12-15"), ("python3.10", "2026-10-31")):
        result = runtime.check(facts(runtime=name), OPTIONS)
        assert isinstance(result, NonCompliant) and f"deprecated {name} on {date}" in result.message


def test_uv_runtime_deprecated_noncompliance_2_about_to_be_deprecated():
    """python3.11 (2027-06-30) warns within the notice period, not before."""
    early = facts(runtime="python3.11", today=datetime.date(2026, 11, 27))
    late = facts(runtime="python3.11", today=datetime.date(2027, 3, 1))
    assert isinstance(runtime.check(early, OPTIONS), Compliant)
    result = runtime.check(late, OPTIONS)
    assert isinstance(result, NonCompliant) and "in 121 days" in result.message
    assert isinstance(runtime.check(early, PolicyOptions(deprecation_notice_days=365)), NonCompliant)


def test_uv_runtime_deprecated_noncompliance_3_retired_runtime():
    """python3.7 is past every date."""
    assert isinstance(runtime.check(facts(runtime="python3.7"), OPTIONS), NonCompliant)


# --- uv-runtime-sdk -----------------------------------------------------------------------------------


def omitting(runtime_name: str, **versions: str) -> FunctionFacts:
    """A function built with omit_runtime_provided=True, whose build left these packages out."""
    build = BuildRecord("app", f"{runtime_name}-x86_64", "abc", omitted={"jmespath": "1.1.0", **versions})
    return facts(runtime=runtime_name, build=build)


def test_uv_runtime_sdk_compliance_locked_no_newer_than_the_runtime_ships():
    """Left out, and the runtime is known to ship at least the locked versions: nothing to say."""
    result = runtime_sdk.check(omitting("python3.9", boto3="1.20.32", botocore="1.23.1"), OPTIONS)
    assert isinstance(result, Compliant) and "ships at least boto3 1.20.32" in result.note


def test_uv_runtime_sdk_noncompliance_1_locked_newer_than_the_runtime_ships():
    """A locked boto3 newer than what the runtime is known to ship: a warning naming both, with the source."""
    result = runtime_sdk.check(omitting("python3.9", boto3="1.44.8", botocore="1.44.8"), OPTIONS)
    assert isinstance(result, NonCompliant) and result.level is None and runtime_sdk.RULE.severity == "warning"
    assert "boto3 1.44.8 is locked, python3.9 is known to ship 1.20.32" in result.message
    assert "botocore 1.44.8 is locked, python3.9 is known to ship 1.23.32" in result.message
    assert "as of 2022-11-14" in result.message


def test_uv_runtime_sdk_noncompliance_2_no_known_version_for_the_runtime():
    """AWS publishes no version for python3.12: the check says it can't vouch for the locked one."""
    result = runtime_sdk.check(omitting("python3.12", boto3="1.44.8", botocore="1.44.8"), OPTIONS)
    assert isinstance(result, NonCompliant) and "no version of the SDK that python3.12 ships is known" in result.message


def test_uv_runtime_sdk_compliance_when_the_sdk_is_in_the_asset():
    """Nothing left out (the default), or only packages other than boto3/botocore: nothing to check."""
    assert isinstance(runtime_sdk.check(facts(), OPTIONS), Compliant)
    assert isinstance(runtime_sdk.check(omitting("python3.12"), OPTIONS), Compliant)


def test_uv_runtime_sdk_not_applicable_to_other_runtimes():
    """A function that is not Python is not this rule's business."""
    assert isinstance(
        runtime_sdk.check(replace(omitting("python3.12", boto3="1"), runtime="nodejs22.x"), OPTIONS), NotApplicable
    )


# --- uv-init-budget (real cold starts of crafted assets: no build) -------------------------------------

# A handler whose module takes about 0.4 s to import, most of it in a dependency it ships.
SLOW = {
    "app/__init__.py": "",
    "app/handler.py": "import heavy\nimport light\n\ndef main(event, context):\n    return 1\n",
    "heavy/__init__.py": "import time\ntime.sleep(0.4)\n",
    "heavy-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: heavy\nVersion: 1.0\n",
    "heavy-1.0.dist-info/RECORD": "heavy/__init__.py,,\n",
    "light.py": "VALUE = 1\n",
}


def budgeted(tmp_path: Path, **changes: Any) -> FunctionFacts:
    return facts(asset_dir=asset(tmp_path, SLOW), **changes)


@pytest.mark.seconds
def test_uv_init_budget_compliance_within_the_budget(tmp_path: Path):
    """Measured from the asset: the init (about 0.4 s) fits a budget of 10 s, and the note says the time."""
    result = init_budget.check(budgeted(tmp_path), PolicyOptions(init_budget_ms=10_000))
    assert isinstance(result, Compliant) and "median of 3 local cold starts" in result.note, result


@pytest.mark.seconds
def test_uv_init_budget_noncompliance_over_the_budget_names_the_heaviest_imports(tmp_path: Path):
    """Over a budget of 100 ms: the time, the budget and the heaviest imports, the dependency first."""
    result = init_budget.check(budgeted(tmp_path), PolicyOptions(init_budget_ms=100))
    assert isinstance(result, NonCompliant) and result.level is None, result  # the rule's severity: error
    assert "over its budget of 100 ms; its heaviest imports: heavy 4" in result.message, result.message


@pytest.mark.seconds
def test_uv_init_budget_noncompliance_the_markers_budget_wins(tmp_path: Path):
    """The marker's own budget (100 ms) applies over the options' (10 s), and without any options' budget."""
    for options in (PolicyOptions(init_budget_ms=10_000), OPTIONS):
        result = init_budget.check(budgeted(tmp_path, init_budget_ms=100), options)
        assert isinstance(result, NonCompliant) and "budget of 100 ms" in result.message


def test_uv_init_budget_not_applicable_when_off_or_not_measurable(tmp_path: Path):
    """Off by default (nothing started); images and another architecture's native code are not measured."""
    assert isinstance(init_budget.check(budgeted(tmp_path), OPTIONS), NotApplicable)
    on = PolicyOptions(init_budget_ms=100)
    assert isinstance(init_budget.check(budgeted(tmp_path, package_type="Image"), on), NotApplicable)
    foreign = "arm64" if host_architecture() == "x86_64" else "x86_64"
    native_code = asset(tmp_path, {**SLOW, "heavy/_speedups.so": elf(X86_64)})
    result = init_budget.check(facts(asset_dir=native_code, architecture=foreign), on)
    assert isinstance(result, NotApplicable) and "not measured: its native code is for" in result.reason


def test_uv_init_budget_an_init_that_raises_is_a_warning(tmp_path: Path):
    """A handler module that raises at import (a variable set only at deploy time): said, as a warning."""
    broken = asset(tmp_path, {"app/__init__.py": "", "app/handler.py": "import os\nTABLE = os.environ['TABLE']\n"})
    result = init_budget.check(facts(asset_dir=broken), PolicyOptions(init_budget_ms=100))
    assert isinstance(result, NonCompliant) and result.level == "warning"
    assert "its init could not be measured: KeyError: 'TABLE'" in result.message


# --- the engine ---------------------------------------------------------------------------------------


def test_a_crashing_rule_is_a_finding_at_its_own_severity():
    """A rule that raises is reported as a finding of that rule at the rule's severity (an error rule
    fails the synth: the gate does not open because a check could not run), and the other rules still run."""

    def broken(facts: FunctionFacts, options: PolicyOptions) -> Any:
        raise KeyError("boom")

    rule = Rule("uv-broken", "error", "t", "e", "f", broken)
    outcomes = engine.judge(facts(), OPTIONS, rules=[rule, uv_built.RULE])
    assert outcomes[0].crashed and outcomes[0].level == "error" and outcomes[0].status == "failed"
    assert "KeyError" in outcomes[0].result.message
    assert outcomes[1].status == "passed"


def test_acknowledgement_needs_a_known_rule_and_a_reason_of_ten_characters():
    """Short reasons and unknown ids are refused, with what is wrong."""
    assert engine._ack_problem({"id": "uv-built", "reason": "legacy code, migrating"}) is None
    assert "at least 10" in engine._ack_problem({"id": "uv-built", "reason": " too short "})
    assert "unknown rule" in engine._ack_problem({"id": "uv-bulit", "reason": "legacy code, migrating"})
    assert "needs a rule id" in engine._ack_problem("uv-built")


def test_options_are_validated():
    """A warning threshold above Lambda's limit, or an unknown option, fails at construction."""
    with pytest.raises(ValueError):
        PolicyOptions(size_warning_mb=300)
    with pytest.raises(ValueError):
        PolicyOptions(include_internal=True)


def test_sparse_helper_makes_big_files_cheaply(tmp_path: Path):
    """The oversized asset above costs no disk: its size is apparent only."""
    sparse(tmp_path, "f", 10 * 1024 * 1024)
    assert os.stat(tmp_path / "f").st_size == 10 * 1024 * 1024


# --- every rule registered, documented and tested -------------------------------------------------------


def test_every_rule_is_registered_documented_and_tested():
    """Each rule module is in the registry, has a row in docs/policy-checks.md's table, and compliant and
    non-compliant tests here (named test_<id>_compliance... and test_<id>_noncompliance...)."""
    import importlib
    import pkgutil

    from cdk_uv_aspect._policy import rules as package

    names = [m.name for m in pkgutil.iter_modules(package.__path__)]
    modules = [importlib.import_module(f"{package.__name__}.{name}") for name in names]
    defined = {m.RULE.id for m in modules if hasattr(m, "RULE")}
    registered = [rule.id for rule in package.RULES]
    assert len(modules) == len(defined), "every module under rules/ defines one RULE"
    assert sorted(defined) == sorted(registered) and len(set(registered)) == len(registered)

    readme = (Path(__file__).parent.parent / "docs" / "policy-checks.md").read_text()
    tests = [name for name in globals() if name.startswith("test_")]
    for rule in package.RULES:
        assert f"| `{rule.id}` | {rule.severity} |" in readme, f"{rule.id}: no row in docs/policy-checks.md's table"
        stem = "test_" + rule.id.replace("-", "_")
        assert any(t.startswith(stem + "_compliance") for t in tests), f"{rule.id}: no compliance test"
        assert any(t.startswith(stem + "_noncompliance") for t in tests), f"{rule.id}: no noncompliance test"
        assert rule.explanation and rule.fix and rule.title


# --- uv-edge-limits --------------------------------------------------------------------------------------


def test_uv_edge_limits_compliance_small_x86_function_without_variables(tmp_path: Path):
    """An Edge function of a few kB: passes, and the note says it fits viewer triggers too."""
    result = edge.check(facts(edge=True, asset_dir=asset(tmp_path, {"app/handler.py": "x = 1\n"})), OPTIONS)
    assert isinstance(result, Compliant) and "fits viewer and origin triggers" in result.note


def test_uv_edge_limits_compliance_not_an_edge_function():
    assert isinstance(edge.check(facts(environment=("TABLE",)), OPTIONS), NotApplicable)


def test_uv_edge_limits_noncompliance_1_environment_variables():
    result = edge.check(facts(edge=True, environment=("TABLE", "STAGE")), OPTIONS)
    assert isinstance(result, NonCompliant) and "TABLE, STAGE" in result.message


def test_uv_edge_limits_noncompliance_2_arm64_and_an_unsupported_runtime():
    result = edge.check(facts(edge=True, architecture="arm64", runtime="python3.14"), OPTIONS)
    assert isinstance(result, NonCompliant)
    assert "x86_64 only" in result.message and "python3.14" in result.message


@pytest.mark.seconds
def test_uv_edge_limits_noncompliance_3_over_50_mib_zipped(tmp_path: Path):
    """Incompressible bytes over 50 MiB: CloudFront would refuse it for any trigger."""
    big = asset(tmp_path, {"app/blob.bin": os.urandom(51 * 1024 * 1024)})
    result = edge.check(facts(edge=True, asset_dir=big), OPTIONS)
    assert isinstance(result, NonCompliant) and "over the 50 MiB" in result.message


def test_uv_edge_limits_compliance_over_1_mib_says_origin_triggers_only(tmp_path: Path):
    medium = asset(tmp_path, {"app/blob.bin": os.urandom(2 * 1024 * 1024)})
    result = edge.check(facts(edge=True, asset_dir=medium), OPTIONS)
    assert isinstance(result, Compliant) and "origin triggers only" in result.note
