"""The Python examples of README.md and docs/*.md type-check with mypy --strict, as a user's editor and CI
would check them once pasted into an app: the public API accepts what the docs show.

Every ``python`` block is checked, read from the files (never a copy). A block is a fragment of an app: the
names it uses without defining them (``app``, ``stack``, ``fn``...) come from ``CONTEXT`` below, with the
types they have in an app. A block that is not meant to run (a sketch of a pattern, pseudo-code) opts out
with a first line ``# not run: <why>``; a block that runs can't.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
OPT_OUT = re.compile(r"#\s*not run:\s*(.*)")

# What an app around a block defines: the imports a CDK app in Python has, and the constructs the docs'
# fragments name. A new block that names something else: add it here, with the type it has in an app.
CONTEXT = """
from typing import Any

from aws_cdk import App, Aspects, Duration, Stack, Stage, Validations, pipelines
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk.aws_lambda import DockerImageFunction, Function, Runtime
from constructs import Construct

from cdk_uv_aspect import (
    PolicyOptions,
    UvBundlingAspect,
    UvCode,
    UvError,
    UvOptions,
    UvPolicyChecks,
    mark_package,
    uv_image_code,
)
from cdk_uv_aspect.testing import with_uv_aspect

app: App
stack: Stack
self: Stack
legacy_stack: Stack
ci_role: iam.IRole
developers_role: iam.IRole
fn: lambda_.Function
small_fn: lambda_.Function
image_fn: lambda_.DockerImageFunction
layer: lambda_.LayerVersion
source: pipelines.IFileSetProducer
WORKSPACE: str
SampleStack: Any  # the app's own stacks
ShopStack: Any
PipelineStack: Any
"""


def python_blocks() -> list[tuple[str, int, str]]:
    """(doc, line, code) of every ``python`` block of the user docs."""
    found = []
    for doc in DOCS:
        fence, start, block = "", 0, list[str]()
        for number, line in enumerate(doc.read_text().splitlines(keepends=True), 1):
            if fence and line.rstrip() == "```":
                if fence in ("python", "py", "python3"):
                    found.append((doc.relative_to(REPO).as_posix(), start, "".join(block)))
                fence, block = "", []
            elif fence:
                block.append(line)
            elif line.startswith("```"):
                fence, start = line.strip().removeprefix("```") or "text", number
    return found


def docstring_examples() -> list[tuple[str, int, str]]:
    """(where, line, code) of every example (a ``::`` literal block) in the docstrings of the public API."""
    import cdk_uv_aspect
    import cdk_uv_aspect.testing

    objects = [(f"cdk_uv_aspect.{name}", getattr(cdk_uv_aspect, name)) for name in cdk_uv_aspect.__all__]
    objects.append(("cdk_uv_aspect.testing.with_uv_aspect", cdk_uv_aspect.testing.with_uv_aspect))
    for name, obj in list(objects):
        if inspect.isclass(obj):
            objects += [(f"{name}.{m}", getattr(obj, m)) for m, f in vars(obj).items() if m[0] != "_" and callable(f)]
    found = []
    for name, obj in objects:
        lines = (inspect.getdoc(obj) or "").splitlines()
        for i, line in enumerate(lines):
            if not line.rstrip().endswith("::"):
                continue
            block = list(itertools.takewhile(lambda s: not s or s.startswith(" "), lines[i + 1 :]))
            code = textwrap.dedent("\n".join(block)).strip("\n")
            if code:
                found.append((f"the docstring of {name}", i + 2, code + "\n"))
    return found


def checked_blocks() -> list[tuple[str, int, str]]:
    """The blocks that run: every block but those that say, on their first line, why they do not."""
    blocks = python_blocks() + docstring_examples()
    return [b for b in blocks if not OPT_OUT.fullmatch(b[2].split("\n", 1)[0].strip())]


def test_the_docs_have_python_examples_to_check():
    assert len(checked_blocks()) >= 10, "the docs' Python examples were not found"


def test_a_block_that_opts_out_says_why():
    """``# not run:`` with no reason would let any failing example hide."""
    for doc, line, code in python_blocks():
        first = code.split("\n", 1)[0].strip()
        if match := OPT_OUT.fullmatch(first):
            assert len(match.group(1).strip()) >= 10, f"{doc}:{line}: say why the block is not run"


@pytest.mark.slow
def test_every_python_example_of_the_docs_type_checks_strictly(tmp_path: Path):
    """mypy --strict on each block in its context: a documented call the public API's types refuse fails."""
    blocks = checked_blocks()
    names = {}
    for doc, line, code in blocks:
        name = f"{re.sub(r'[^a-z0-9]+', '_', doc.lower().removesuffix('.md'))}_{line}".strip("_")
        (tmp_path / f"{name}.py").write_text(CONTEXT + "\n# --- " + f"{doc}:{line}\n" + code)
        names[name] = (doc, line, CONTEXT.count("\n") + 2)
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\nstrict = True\npython_version = 3.11\n")
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(config), "--cache-dir", str(REPO / ".mypy_cache"), "."],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    errors = []
    for message in done.stdout.splitlines():
        match = re.match(r"(\w+)\.py:(\d+): (error|note): (.*)", message)
        if match and match.group(1) in names:
            doc, line, offset = names[match.group(1)]
            errors.append(f"{doc}:{line + int(match.group(2)) - offset}: {match.group(3)}: {match.group(4)}")
    assert done.returncode == 0 and not errors, "\n".join(errors) or done.stdout + done.stderr


def test_the_options_typed_signature_names_every_field_in_order():
    """``UvOptions``' signature for type checkers (what a call may pass) has one parameter per field."""
    from cdk_uv_aspect import UvOptions

    source = (REPO / "cdk_uv_aspect" / "_options.py").read_text()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef) and node.name == "UvOptions":
            inits = [f for f in ast.walk(node) if isinstance(f, ast.FunctionDef) and f.name == "__init__"]
            assert len(inits) == 1
            assert [a.arg for a in inits[0].args.kwonlyargs] == list(UvOptions.model_fields)
            return
    raise AssertionError("UvOptions not found")
