"""Generate the benchmark's uv workspace: K handler packages over one shared library, locked with uv."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = """[tool.uv.workspace]
members = ["packages/*"]
"""

PACKAGE = """[project]
name = "{name}"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = [{deps}]

[tool.uv.sources]
common = {{ workspace = true }}

[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"
"""

HANDLER = """import orjson
from common import greet


def main(event, context):
    return orjson.loads(orjson.dumps({{"package": "{name}", "message": greet(event.get("name", "x"))}}))
"""

PER_STACK = 50  # functions per stack in the benchmark app, as real apps split them (and under 500 resources)


def package_of(i: int, k: int) -> str:
    """The package of the benchmark app's function ``i``: functions take the K packages in turn."""
    return f"fn{i % k:02d}"


def generate(root: Path, k: int, uv: str) -> Path:
    """K packages fn00..: each depends on `common` and orjson, every fourth on pydantic too."""
    if (root / "uv.lock").is_file():
        return root
    (root / "packages").mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(ROOT)
    _package(root, "common", [], {"__init__.py": "def greet(name):\n    return f'hello {name}'\n"})
    for i in range(k):
        name = f"fn{i:02d}"
        deps = ["common", "orjson>=3.10"] + (["pydantic>=2.7"] if i % 4 == 0 else [])
        _package(root, name, deps, {"__init__.py": "", "handler.py": HANDLER.format(name=name)})
    subprocess.run([uv, "lock", "--quiet"], cwd=root, check=True)
    return root


def _package(root: Path, name: str, deps: list[str], files: dict[str, str]) -> None:
    folder = root / "packages" / name
    (folder / "src" / name).mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(PACKAGE.format(name=name, deps=", ".join(f'"{d}"' for d in deps)))
    for file, text in files.items():
        (folder / "src" / name / file).write_text(text)


def edit(root: Path, package: str, token: str) -> Path:
    """Edit one source file of ``package`` (its handler), as a developer would: the handler now says ``token``."""
    handler = root / "packages" / package / "src" / package / "handler.py"
    lines = [line for line in handler.read_text().splitlines() if not line.startswith("EDITED = ")]
    handler.write_text("\n".join([*lines, f"EDITED = {token!r}"]) + "\n")
    return handler
