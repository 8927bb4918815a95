"""The deploy loop: the real CDK CLI deploys samples/ to a local AWS emulator (moto_server), and a
redeploy touches exactly the functions whose built code changed.

How: see tests/emulator.py (``moto_server`` on a loopback port, ``-c assets-bucket=...``,
``--method=direct``). Run alone: ``./dev test tests/test_deploy.py``.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from emulator import EVENTS, STACK, Checkout, Deployed, Emulator, Step, deploy, sha256_b64, timeline
from helpers import REPO

from cdk_uv_aspect._invoke import invoke
from cdk_uv_aspect._start import CannotRunHere, LambdaFunction

pytestmark = pytest.mark.slow


def expected_changes(packages: dict[str, str], edited: str) -> set[str]:
    # every sample package depends on common; no other package depends on another
    return {path for path, package in packages.items() if package == edited or edited == "common"}


def code_changes(before: dict[str, Deployed], after: dict[str, Deployed]) -> set[str]:
    assert after.keys() == before.keys()
    return {path for path in after if after[path].code_sha256 != before[path].code_sha256}


@dataclass(frozen=True)
class History:
    checkout: Checkout
    packages: dict[str, str]  # construct path -> uv package
    first: Step
    unchanged: Step  # the same code again
    edited: dict[str, tuple[Step, Step]]  # package -> (before, after) its source edit


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory, emulator: Emulator, build_cache: Path) -> History:
    """The sample's deploys, in order: first, unchanged, `orders` edited, then `common` edited too."""
    checkout = Checkout.copy_of(REPO / "samples", tmp_path_factory.mktemp("laptop") / "samples", emulator, build_cache)
    steps = timeline(
        checkout,
        {
            "first": None,
            "unchanged": None,
            "orders": lambda: checkout.edit("orders"),
            "common": lambda: checkout.edit("common"),
        },
    )
    edited = {"orders": (steps["unchanged"], steps["orders"]), "common": (steps["orders"], steps["common"])}
    return History(checkout, checkout.packages(), steps["first"], steps["unchanged"], edited)


def test_deploy_creates_every_function_from_the_zip_uploaded_for_it(history: History) -> None:
    """Every sample function exists, and its CodeSha256 is the hash of the zip in the assets bucket."""
    deployed = history.first.functions
    assert set(deployed) == set(history.packages)
    assert len(deployed) >= 4
    for path, fn in deployed.items():
        assert fn.code_sha256 == sha256_b64(history.first.zips[path]), path


def test_redeploy_without_changes_changes_nothing(history: History) -> None:
    """A second deploy of the same code: the CLI reports no changes and every CodeSha256 stays."""
    assert f"{STACK} (no changes)" in history.unchanged.output
    assert history.unchanged.functions == history.first.functions


@pytest.mark.parametrize("edited", ["orders", "common"])
def test_editing_a_package_redeploys_exactly_its_functions(history: History, edited: str) -> None:
    """After a source edit, only the functions built from that package (or depending on it) change."""
    before, after = history.edited[edited]
    expected = expected_changes(history.packages, edited)
    assert expected, f"no sample function is built from {edited}"
    assert code_changes(before.functions, after.functions) == expected
    for path in expected:
        assert after.functions[path].code_sha256 == sha256_b64(after.zips[path]), path


@pytest.mark.parametrize("edited", ["orders", "common"])
def test_the_redeployed_zip_runs_from_the_bucket(history: History, edited: str, tmp_path: Path) -> None:
    """The zip that landed for an edited function answers with the edited code, from that zip alone."""
    _, after = history.edited[edited]
    ran = []
    for path in sorted(expected_changes(history.packages, edited)):
        fn = after.functions[path]
        folder = tmp_path / fn.name
        zipfile.ZipFile(io.BytesIO(after.zips[path])).extractall(folder)
        event = json.loads((EVENTS / f"{history.packages[path]}.json").read_text())
        python = fn.runtime.removeprefix("python")
        try:
            function = LambdaFunction(
                folder, fn.handler, python, architecture=fn.architecture, name=fn.name, timeout=60
            )
            answer = invoke(function, event)
        except CannotRunHere:
            continue  # another architecture's native code (OrdersArm on an x86_64 machine)
        assert answer.ok, f"{path}: {answer.result}"
        assert '"v": 2' in json.dumps(answer.result), f"{path} answered with the code before the edit"
        ran.append(path)
    assert ran, "no edited function could run on this machine"


def test_a_second_checkout_redeploys_only_what_changed(history: History, tmp_path: Path) -> None:
    """From another folder, umask and empty build cache (a CI runner after a laptop): the same code
    changes nothing; one more package edited there changes only its functions."""
    laptop = history.checkout
    last = history.edited["common"][1]
    runner = Checkout.copy_of(
        laptop.folder, tmp_path / "runner" / "work" / "samples", laptop.emulator, tmp_path / "runner-cache", umask=0o077
    )
    same = deploy(runner)
    assert f"{STACK} (no changes)" in same.output
    assert same.functions == last.functions

    runner.edit("users")
    edited = deploy(runner)
    assert code_changes(same.functions, edited.functions) == expected_changes(runner.packages(), "users")


def test_the_cli_zips_the_same_code_to_the_same_bytes_on_another_checkout(history: History, tmp_path: Path) -> None:
    """The CLI zips each asset folder itself: from another folder, umask and build cache, the zip of
    the same code is byte for byte the laptop's (so also its CodeSha256)."""
    laptop = history.checkout
    last = history.edited["common"][1]
    runner = Checkout.copy_of(
        laptop.folder, tmp_path / "runner" / "samples", laptop.emulator, tmp_path / "runner-cache", umask=0o077
    )
    other = "uv-sample-assets-2"
    laptop.emulator.client("s3").create_bucket(Bucket=other)
    runner.publish_assets(other)
    for path, fn in last.functions.items():
        assert laptop.emulator.object(fn.s3_key, bucket=other) == last.zips[path], path
