"""docs/adopting.md's steps, run as written from a `cdk init`-style app (a `.venv` made with pip holding
aws-cdk-lib, `requirements.txt`, `Code.from_asset` functions): the functions are built and answer, and the
app's `.venv` is still the one pip made, whichever Python the machine finds first."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import REPO
from shell_docs import order_params, run_script, shell_blocks, with_order

pytestmark = pytest.mark.slow

BEFORE = REPO / "samples" / "retrofit" / "before"


def the_diff() -> str:
    """Step 2's change to app.py, as the doc shows it, in the form `patch` reads."""
    docs = (REPO / "docs" / "adopting.md").read_text()
    return "--- app.py\n+++ app.py\n" + docs.split("```diff\n", 1)[1].split("```", 1)[0]


@pytest.fixture(scope="module")
def cdk_init_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """samples/retrofit/before with the `.venv` `cdk init` makes: `python -m venv`, then pip installs
    requirements.txt. Made once (pip takes minutes on a busy machine); each order starts from the app's
    files as they were before, with that same `.venv` (cdk-uv-aspect uninstalled from it again)."""
    app = tmp_path_factory.mktemp("cdk-init-app") / "shop"
    shutil.copytree(BEFORE, app)
    python = Path(sys.executable).resolve()  # the base interpreter of the test environment: 3.11
    subprocess.run([str(python), "-m", "venv", str(app / ".venv")], check=True)
    subprocess.run(
        [str(app / ".venv" / "bin" / "pip"), "install", "--quiet", "--no-compile", "-r", "requirements.txt"],
        cwd=app,
        check=True,
        capture_output=True,
    )
    yield app


def reset(app: Path) -> None:
    for entry in app.iterdir():
        if entry.name != ".venv":
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    shutil.copytree(BEFORE, app, dirs_exist_ok=True)
    subprocess.run([str(app / ".venv" / "bin" / "pip"), "uninstall", "--quiet", "-y", "cdk-uv-aspect"], check=True)


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("build-cache")


@pytest.mark.parametrize("order", order_params())
def test_the_adopting_steps_run_as_written_and_keep_the_apps_venv(
    cdk_init_app: Path, installed: dict[str, str], shared_cache: Path, order: str
):
    """Step 1's uv commands, step 2's diff and requirements line, step 4's synth, report and invoke: in a
    bash with the app's `.venv` active, uv from the README's install, the machine's Pythons newest first
    and oldest first."""
    app = cdk_init_app
    reset(app)
    venv_before = (app / ".venv" / "pyvenv.cfg").read_bytes()
    venv_bin = str(app / ".venv" / "bin")
    env = with_order(
        {
            **installed,
            "VIRTUAL_ENV": str(app / ".venv"),  # `source .venv/bin/activate`
            "PATH": os.pathsep.join([venv_bin, installed["PATH"]]),
            "CDK_UV_CACHE_DIR": str(shared_cache),
        },
        order,
    )
    steps = shell_blocks("docs/adopting.md")["Steps"]
    assert len(steps) == 3, "docs/adopting.md's steps have other shell blocks than this test runs"
    outputs = []
    for number, script in enumerate(steps):
        if number == 1:  # step 2: the change to app.py that the doc shows, then its shell block
            patched = subprocess.run(["patch", "app.py"], cwd=app, input=the_diff(), capture_output=True, text=True)
            assert patched.returncode == 0, patched.stdout + patched.stderr
        done = run_script(script, app, env)
        assert done.returncode == 0, f"this block of docs/adopting.md failed:\n{script}\n{done.stdout}\n{done.stderr}"
        outputs.append(done)

    assert (app / ".venv" / "pyvenv.cfg").read_bytes() == venv_before  # the app's own, not one uv made
    kept = subprocess.run(
        [f"{venv_bin}/python", "-c", "import aws_cdk, cdk_uv_aspect, pip"], capture_output=True, text=True
    )
    assert kept.returncode == 0, kept.stderr
    assert not (app / "lambdas" / "orders" / "requirements.txt").exists() and (app / "uv.lock").is_file()
    synth = outputs[2]
    assert "Bundling uv package orders (python3.12-x86_64) for Shop/Orders..." in synth.stderr, synth.stderr
    assert "Shop/Orders" in synth.stdout and "Shop/Notify" in synth.stdout  # the report
    answer = json.loads(synth.stdout.strip().splitlines()[-1])
    assert answer["statusCode"] == 200 and json.loads(answer["body"]) == {"items": 2, "total": 20.25}
