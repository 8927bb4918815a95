"""The map holds: docs/architecture.md names every module and says true things of it, ``_state`` lists every
piece of process-wide state, and each rule the package keeps (a name, a version, Lambda's task root, the
record of what was built) is written in one place."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parent.parent
PACKAGE = REPO / "cdk_uv_aspect"
ARCHITECTURE = REPO / "docs" / "architecture.md"


def module_table() -> dict[str, str]:
    """The rows of docs/architecture.md's module table: module -> its CDK column."""
    text = ARCHITECTURE.read_text()
    section = text[text.index("## The modules") :]
    section = section[: section.index("\n## ", 1)]
    rows = re.findall(r"^\| `([^`]+)` \|[^|]*\|([^|]*)\|$", section, re.MULTILINE)
    return {module: cdk.strip() for module, cdk in rows}


def test_the_module_table_names_exactly_the_modules_there_are():
    """A module added, moved or removed is a row added, moved or removed."""
    there = {p.name for p in PACKAGE.glob("*.py")} | {
        f"{p.name}/" for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()
    }
    assert set(module_table()) == there


def test_the_modules_said_to_be_cdk_free_import_no_part_of_the_cdk():
    """Imported alone, in order, none of them brings in aws_cdk, constructs or jsii (and with it a node process)."""
    free = [m.removesuffix(".py").removesuffix("/") for m, cdk in module_table().items() if cdk != "CDK"]
    names = ["cdk_uv_aspect" if m == "__init__" else f"cdk_uv_aspect.{m}" for m in free]
    script = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "    cdk = sorted(m for m in sys.modules if m.split('.')[0] in ('aws_cdk', 'constructs', 'jsii'))\n"
        "    if cdk:\n"
        "        sys.exit(f'{name} imports {cdk[0]}')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr or done.stdout
    cdk = [m for m, c in module_table().items() if c == "CDK"]
    assert "_aspect.py" in cdk and "_layer.py" in cdk and "_image.py" in cdk


# --- process-wide state --------------------------------------------------------------------------------

_MUTABLE = {"set", "dict", "list", "Lock", "RLock", "Event", "Semaphore", "BoundedSemaphore", "Condition"}


def process_wide_state() -> set[str]:
    """What the package keeps beyond one call: module-level registries, ``global`` names, what it sets on the
    interpreter (``sys.*``, signal handlers) and on objects it is given (``_cdk_uv_*`` attributes)."""
    found: set[str] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).with_suffix("").as_posix().replace("/", ".")
        tree = ast.parse(path.read_text())
        for node in tree.body:
            targets, value = [], None
            if isinstance(node, ast.Assign):
                targets, value = node.targets, node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                targets, value = [node.target], node.value
            empty = isinstance(value, (ast.Set, ast.List)) and not value.elts
            empty = empty or (isinstance(value, ast.Dict) and not value.keys)
            call = isinstance(value, ast.Call) and ast.unparse(value.func).rsplit(".", 1)[-1] in _MUTABLE
            if empty or call:
                found.update(f"{module}.{t.id}" for t in targets if isinstance(t, ast.Name))
        for node in ast.walk(tree):
            if isinstance(node, ast.Global):
                found.update(f"{module}.{name}" for name in node.names)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Attribute) and ast.unparse(target.value) == "sys":
                        found.add(f"sys.{target.attr}")
                    elif isinstance(target, ast.Attribute) and target.attr.startswith("_cdk_uv"):
                        found.add(target.attr)
            elif isinstance(node, ast.Call) and ast.unparse(node.func) == "signal.signal":
                found.add("signal.signal")
    return found


def test_state_lists_everything_the_package_keeps_beyond_one_call():
    listed = ast.get_docstring(ast.parse((PACKAGE / "_state.py").read_text())) or ""
    state = process_wide_state()
    assert {"sys.excepthook", "_cdk_uv_swapped_check", "_signals._depth", "signal.signal"} <= state
    missing = [name for name in sorted(state) if name.removeprefix("_state.") not in listed]
    assert not missing, f"not listed in _state.py's docstring: {missing}"


# --- one place for each rule ---------------------------------------------------------------------------


def source() -> dict[str, str]:
    return {p.relative_to(PACKAGE).as_posix(): p.read_text() for p in sorted(PACKAGE.rglob("*.py"))}


def files_with(text: str, *, pattern: bool = False) -> list[str]:
    """The modules whose source holds ``text`` (a regular expression with ``pattern``), once per occurrence."""
    wanted = re.compile(text if pattern else re.escape(text), re.MULTILINE)
    return [name for name, code in source().items() for _ in wanted.finditer(code)]


def test_each_rule_is_written_once():
    """A rule written twice drifts apart: names normalized two ways, the task root defined twice, the
    record of what was built written or read by hand."""
    assert files_with("[-_.]+") == ["_names.py"]  # the one name normaliser
    assert files_with("canonicalize_name") == []
    assert files_with(r"==\s*") == ["_names.py"]  # the one name==version parser
    assert files_with(r"3\.\d+") == ["_names.py"]  # the one Python version pattern
    assert files_with(r"^TASK_ROOT = ", pattern=True) == ["_lambda.py"]
    assert files_with('"/var/task"') == ["_lambda.py"]
    assert files_with('"uv:build"') == ["_record.py"]
    assert files_with("add_metadata(BUILT") == ["_swap.py"]  # the one writer of the record
    assert files_with(r"==\s*BUILT\b", pattern=True) == ["_record.py"]  # its one reader


def test_a_module_over_300_lines_says_why_it_is_one_job():
    """A module grows past about 300 lines only with its docstring saying why it is still one job; else split it."""
    long = {
        str(path.relative_to(PACKAGE)): ast.get_docstring(ast.parse(path.read_text())) or ""
        for path in PACKAGE.rglob("*.py")
        if len(path.read_text().splitlines()) > 300
    }
    assert {name for name, doc in long.items() if "one job" not in doc} == set()
