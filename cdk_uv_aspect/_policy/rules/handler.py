"""uv-handler: the handler's module is in the built asset and defines the function (read, never imported)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from ..facts import FunctionFacts
from ..options import PolicyOptions
from ..rule import Compliant, NonCompliant, NotApplicable, Rule, Verdict


def check(facts: FunctionFacts, options: PolicyOptions) -> Verdict:
    if facts.python is None:
        return NotApplicable(f"runtime {facts.runtime or 'unknown'} is not Python")
    if facts.asset_dir is None:
        return NotApplicable("no uv-built asset to inspect")
    if not facts.handler:
        return NotApplicable("the handler is not known at synthesis (a token)")
    # The Lambda runtime splits at the last dot and imports the rest, '/' read as '.'.
    module, _, name = facts.handler.rpartition(".")
    if not module or not name:
        return NonCompliant(f'handler "{facts.handler}" is not of the form "module.function"')
    parts = module.replace("/", ".").split(".")
    found = _module_file(facts.asset_dir, parts)
    if found is None:
        wanted = "/".join(parts)
        return NonCompliant(
            f'handler "{facts.handler}": no module {".".join(parts)} in the asset '
            f"(looked for {wanted}.py and {wanted}/__init__.py)"
        )
    if found.suffix != ".py":
        return Compliant(f"{found.relative_to(facts.asset_dir)} is compiled; its names are not read")
    rel = found.relative_to(facts.asset_dir).as_posix()
    try:
        tree = ast.parse(found.read_bytes(), filename=rel)
    except SyntaxError as exc:
        if sys.version_info[:2] < tuple(int(p) for p in facts.python.split(".")):
            return Compliant(f"{rel} uses syntax newer than this machine's Python; not read")
        return NonCompliant(f'handler "{facts.handler}": {rel} does not parse: {exc.msg} (line {exc.lineno})')
    names, opaque = _top_level_names(tree.body)
    if name in names or opaque:
        return Compliant(f"{rel} defines {name}" if name in names else f"{rel} binds names dynamically")
    return NonCompliant(f'handler "{facts.handler}": {rel} defines no {name!r}')


def _module_file(root: Path, parts: list[str]) -> Path | None:
    base = root.joinpath(*parts)
    candidates = [
        base.with_name(base.name + ".py"),
        base / "__init__.py",
        base.with_name(base.name + ".pyc"),
        base / "__init__.pyc",
    ]
    candidates += sorted(base.parent.glob(base.name + ".*.so")) if base.parent.is_dir() else []
    return next((c for c in candidates if c.is_file()), None)


def _top_level_names(body: list[ast.stmt]) -> tuple[set[str], bool]:
    """Names a module binds at its top level (conditional blocks included), and whether it binds unknowns."""
    names: set[str] = set()
    opaque = False
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name == "*":
                    opaque = True
                names.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
            blocks = [node.body, getattr(node, "orelse", []), getattr(node, "finalbody", [])]
            blocks += [h.body for h in getattr(node, "handlers", [])]
            for block in blocks:
                inner, inner_opaque = _top_level_names(block)
                names |= inner
                opaque |= inner_opaque
    # A module-level __getattr__ (PEP 562) can answer any name.
    return names, opaque or "__getattr__" in names


RULE = Rule(
    id="uv-handler",
    severity="error",
    title="The handler exists in the asset",
    explanation="The handler's module is in the built asset and defines the handler function, checked "
    "by reading the source (nothing is imported at synthesis). A misspelled handler otherwise fails "
    "only on the first invocation, with Runtime.ImportModuleError.",
    fix='fix the function\'s handler ("module.function", e.g. "api.handler.main" for '
    "src/api/handler.py defining main), or add the module to the package the marker names",
    check=check,
)
