"""The benchmark's seed-recipe row builds real, working assets: the baseline it is compared with is honest."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest
from helpers import REPO, call_handler

from cdk_uv_aspect._uv import Uv

BENCH = REPO / "bench"


def _bench_module(name: str):  # type: ignore[no-untyped-def]
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))  # bench/app.py imports seed_recipe by name
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_seed_recipe_row_deploys_handlers_that_answer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bench app in `seed` mode: each package gets its own asset, and its handler answers from it alone."""
    uv = Uv.locate(None).path
    workspace = _bench_module("workspace").generate(tmp_path / "ws", 2, uv)
    monkeypatch.setenv("SEED_ENV_ROOT", str(tmp_path / "envs"))
    monkeypatch.setenv("PATH", os.pathsep.join([str(Path(uv).parent), os.environ["PATH"]]))  # the recipe runs `uv`
    out = tmp_path / "cdk.out"

    app = _bench_module("app").build("seed", 2, 2, str(workspace), str(out), {})
    app.synth()

    template = json.loads((out / "Bench0.template.json").read_text())
    keys = {
        logical_id[:-8]: resource["Properties"]["Code"]["S3Key"].removesuffix(".zip")
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function"
    }
    assert set(keys) == {"F0", "F1"}
    assert keys["F0"] != keys["F1"], "two packages must not share one bundled asset"
    for function, package in (("F0", "fn00"), ("F1", "fn01")):
        asset = out / f"asset.{keys[function]}"
        assert (asset / package / "__pycache__").is_dir(), "the recipe compiles bytecode"
        answer = call_handler(asset, f"{package}.handler.main", "3.12", {"name": "bench"})
        assert answer.ok, answer.result
        assert answer.result == {"package": package, "message": "hello bench"}
