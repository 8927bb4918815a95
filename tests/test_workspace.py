"""The workspace: a package's closure of workspace packages, and the fingerprint of their sources."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import FIXTURES

from cdk_uv_aspect._uv import UV_ENV, Uv
from cdk_uv_aspect._workspace import Workspace


@pytest.mark.seconds
def test_the_closure_follows_the_chosen_groups_to_workspace_packages(tmp_path: Path):
    """A group that pulls in a workspace package puts that package's sources into the build key."""
    shutil.copytree(FIXTURES / "groups", tmp_path / "ws")
    root = tmp_path / "ws"
    pyproject = root / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text()
        .replace('otel = ["idna"]', 'otel = ["idna", "cloud"]')
        .replace("basket = { workspace = true }", "basket = { workspace = true }\ncloud = { workspace = true }")
    )
    subprocess.run([Uv.locate(None).path, "lock", "--quiet"], cwd=root, check=True, env={**os.environ, **UV_ENV})
    workspace = Workspace.load(root)
    assert [p.name for p in workspace.closure("shop")] == ["basket", "shop"]
    assert [p.name for p in workspace.closure("shop", ("otel",))] == ["basket", "cloud", "shop"]


PEAK_OF_FINGERPRINT = """
import resource, sys
from pathlib import Path
from cdk_uv_aspect._workspace import Workspace
workspace = Workspace.find(Path(sys.argv[1]))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
workspace.fingerprint("common")
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


@pytest.mark.seconds
def test_fingerprinting_a_big_file_reads_it_in_pieces(workspace: Path):
    """A 512 MiB data file in a package (never shipped: hatchling packs src/ only) is hashed without
    holding it in memory: the process's peak grows by far less than the file (it grew by the whole file)."""
    big = workspace / "packages" / "common" / "data" / "model.bin"
    big.parent.mkdir()
    with open(big, "wb") as f:
        f.truncate(512 * 1024 * 1024)  # sparse: no disk used, every byte read all the same
    done = subprocess.run(
        [sys.executable, "-c", PEAK_OF_FINGERPRINT, str(workspace)], capture_output=True, text=True, check=True
    )
    grew = int(done.stdout)
    assert grew < 64 * 1024 * 1024, f"the peak grew by {grew / 2**20:.0f} MiB while fingerprinting a 512 MiB file"
