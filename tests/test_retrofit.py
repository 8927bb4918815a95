"""Adopting the aspect in an existing app: the retrofit sample, the docs' diff, single-project layouts."""

from __future__ import annotations

import difflib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk import Stack
from aws_cdk import aws_lambda as lambda_
from helpers import REPO, add_function, call_handler, function_codes, synth_app

from cdk_uv_aspect._record import BUILT
from cdk_uv_aspect._uv import Uv

pytestmark = pytest.mark.slow

RETROFIT = REPO / "samples" / "retrofit"
CDK_UV = str(Path(sys.executable).with_name("cdk-uv"))


def test_retrofitted_app_synthesizes_and_its_handlers_answer(tmp_path: Path, cache_dir: Path):
    """The converted app, run as `cdk synth` runs it: both functions uv-built, both handlers answer."""
    app = tmp_path / "after"
    shutil.copytree(RETROFIT / "after", app)
    env = {**os.environ, "CDK_OUTDIR": str(app / "cdk.out")}
    synth = subprocess.run([sys.executable, "app.py"], cwd=app, env=env, capture_output=True, text=True, check=False)
    assert synth.returncode == 0, synth.stderr
    assert "Bundling uv package orders (python3.12-x86_64) for Shop/Orders... built in" in synth.stderr

    artifact = json.loads((app / "cdk.out" / "manifest.json").read_text())["artifacts"]["Shop"]
    metadata = artifact.get("metadata") or json.loads(
        (app / "cdk.out" / artifact["additionalMetadataFile"]).read_text()
    )
    assert {e["data"]["package"] for entries in metadata.values() for e in entries if e["type"] == BUILT} == {
        "orders",
        "notify",
    }
    # The pitfall the docs name: the function that kept Code.from_asset still stages its old folder.
    warnings = [e["data"] for e in metadata.get("/Shop/Notify", []) if e["type"] == "aws:cdk:warning"]
    assert any("still stages and uploads it" in w for w in warnings)
    assert not any(e["type"] == "aws:cdk:warning" for e in metadata.get("/Shop/Orders", []))

    for name, event, expected in [
        ("Orders", (RETROFIT / "after" / "events" / "orders.json").read_text(), {"items": 2, "total": 20.25}),
        (
            "Notify",
            (RETROFIT / "after" / "events" / "notify.json").read_text(),
            {"message": "order A-17 is ready", "function": "Notify"},
        ),
    ]:
        done = subprocess.run(
            [CDK_UV, "invoke", name, "--event", "-"], cwd=app, input=event, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
        answer = json.loads(done.stdout)
        assert answer["statusCode"] == 200 and json.loads(answer["body"]) == expected


def test_the_docs_show_the_real_diff_and_handlers_stay_as_they_were():
    """docs/adopting.md shows every changed line of before/app.py -> after/app.py; handlers are untouched."""
    before = (RETROFIT / "before" / "app.py").read_text().splitlines()
    after = (RETROFIT / "after" / "app.py").read_text().splitlines()
    changed = [
        line
        for line in difflib.unified_diff(before, after, lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    docs = (REPO / "docs" / "adopting.md").read_text()
    shown = docs.split("```diff\n", 1)[1].split("\n```", 1)[0].splitlines()
    # The same added and removed lines (diff tools may place an added blank line differently).
    assert changed and sorted(changed) == sorted(line for line in shown if line[:1] in "+-")
    for handler in ("orders", "notify"):
        assert (RETROFIT / "before" / "lambdas" / handler / "index.py").read_bytes() == (
            RETROFIT / "after" / "lambdas" / handler / "index.py"
        ).read_bytes()


# --- single-project layouts: one package with its own uv.lock, no workspace ------------------------

HANDLER = "import json\n\ndef main(event, context):\n    return {'hello': event.get('name', 'svc')}\n"


def single_project(root: Path, *, packaged: bool) -> Path:
    """A project as `uv init` makes it, with the CDK app and its output at the root, locked by real uv."""
    root.mkdir()
    lines = ["[project]", 'name = "svc"', 'version = "0.1.0"', 'requires-python = ">=3.11"', "dependencies = []"]
    if packaged:
        lines += ["", "[build-system]", 'requires = ["hatchling"]', 'build-backend = "hatchling.build"']
        (root / "src" / "svc").mkdir(parents=True)
        (root / "src" / "svc" / "__init__.py").write_text("")
        (root / "src" / "svc" / "handler.py").write_text(HANDLER)
    else:
        (root / "handler.py").write_text(HANDLER)
    (root / "pyproject.toml").write_text("\n".join(lines) + "\n")
    (root / "app.py").write_text("# the CDK app lives here too\n")
    (root / ".venv" / "lib").mkdir(parents=True)
    (root / ".venv" / "lib" / "site.py").write_text("# the project's own environment\n")
    done = subprocess.run(
        [Uv.locate(None).path, "lock", "--offline", "--quiet"], cwd=root, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return root


@pytest.mark.parametrize(
    ("packaged", "source", "handler"),
    [
        (True, 'source = { editable = "." }', "svc.handler.main"),
        (False, 'source = { virtual = "." }', "handler.main"),
    ],
)
def test_single_project_builds_like_a_workspace_and_ignores_its_cdk_out_and_venv(
    tmp_path: Path, cache_dir: Path, packaged: bool, source: str, handler: str
):
    """The root package is built; its cdk.out (any name) and .venv change neither the build nor the asset."""
    root = single_project(tmp_path / "svc", packaged=packaged)
    assert source in (root / "uv.lock").read_text()  # what uv writes for a project's own package

    def populate(stack: Stack) -> None:
        add_function(stack, "Svc", "svc", handler=handler, runtime=lambda_.Runtime.PYTHON_3_12)

    # `cdk synth --output cdk.out.prod`: a cloud assembly at the package's root, under a name of its own.
    _, first = synth_app(root, populate, outdir=root / "cdk.out.prod")
    (code,) = function_codes(first).values()
    staged = root / "cdk.out.prod" / f"asset.{code['S3Key'].removesuffix('.zip')}"
    answer = call_handler(staged, handler, "3.12", {"name": "x"})
    assert answer.ok, answer.result
    assert answer.result == {"hello": "x"}

    # Synthesize again into the same folder, now full of staged assets, with the environment changed:
    # not rebuilt, the same asset, and no old assets copied into the new one.
    (root / ".venv" / "lib" / "site.py").write_text("# changed\n")
    _, second = synth_app(root, populate, outdir=root / "cdk.out.prod")
    assert function_codes(second) == function_codes(first)
    assert len(list((cache_dir / "builds").iterdir())) == 1
    assert not any(p.name.startswith(("cdk.out", ".venv")) for p in staged.iterdir())
