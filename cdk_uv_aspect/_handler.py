"""Handler: does a built folder have the handler a function names? Read, never imported.

Shared by the bundling aspect (which refuses a function whose handler its build does not have) and the
policy rule ``uv-handler`` (which judges functions built elsewhere too). The Lambda runtime splits the
handler at its last dot, imports the module (``/`` read as ``.``) and looks the function up in it.
"""

from __future__ import annotations

import ast
import difflib
import sys
from dataclasses import dataclass
from pathlib import Path

_SHOWN = 8  # names listed in a message


@dataclass(frozen=True)
class Found:
    """The handler is there (or can't be judged without importing): ``note`` says which."""

    note: str


@dataclass(frozen=True)
class Missing:
    """The handler is not there: ``reason`` says why, and what is there instead; ``error_type`` is how the
    Lambda Python runtime fails each invocation then."""

    handler: str
    reason: str
    error_type: str = "Runtime.ImportModuleError"

    @property
    def message(self) -> str:
        return f'handler "{self.handler}": {self.reason}'


def find_handler(asset_dir: Path, handler: str, python: str) -> Found | Missing:
    """Whether ``asset_dir`` has ``handler`` ("module.function"), for a runtime of Python ``python`` ("3.12")."""
    module, _, name = handler.rpartition(".")
    if not module or not name:
        return Missing(handler, 'it is not of the form "module.function"', "Runtime.MalformedHandlerName")
    parts = module.replace("/", ".").split(".")
    found = _module_file(asset_dir, parts)
    if found is None:
        wanted = "/".join(parts)
        return Missing(
            handler,
            f"no module {'.'.join(parts)} in the asset (looked for {wanted}.py and {wanted}/__init__.py)"
            + _instead(_modules_near(asset_dir, parts), parts[-1]),
        )
    if found.suffix != ".py":
        return Found(f"{found.relative_to(asset_dir)} is compiled; its names are not read")
    rel = found.relative_to(asset_dir).as_posix()
    major, minor = (int(p) for p in python.split(".")[:2])
    try:
        # feature_version: syntax newer than the runtime's fails here too (best effort, as ast documents).
        newer_here = sys.version_info[:2] >= (major, minor)
        tree = ast.parse(found.read_bytes(), filename=rel, feature_version=(major, minor) if newer_here else None)
    except SyntaxError as exc:
        if not newer_here:
            return Found(f"{rel} uses syntax newer than this machine's Python; not read")
        reason = f"{rel} does not parse for Python {python}: {exc.msg} (line {exc.lineno})"
        return Missing(handler, reason, "Runtime.UserCodeSyntaxError")
    names, opaque = top_level_names(tree.body)
    if name in names or opaque:
        return Found(f"{rel} defines {name}" if name in names else f"{rel} binds names dynamically")
    defined = _functions(tree.body) or _public(names)
    reason = f"{rel} defines no {name!r}{_instead(defined, name, 'it defines')}"
    return Missing(handler, reason, "Runtime.HandlerNotFound")


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


def _modules_near(root: Path, parts: list[str]) -> list[str]:
    """The modules beside the one that is missing: in its package, else at the top of the asset."""
    folder = root.joinpath(*parts[:-1])
    while not folder.is_dir() and folder != root:
        folder = folder.parent
    names = set()
    for entry in folder.iterdir():
        if entry.name.startswith((".", "_")) or entry.name.endswith((".dist-info", ".data")):
            continue
        if entry.suffix == ".py":
            names.add(entry.stem)
        elif entry.is_dir() and any(entry.glob("*.py")):
            names.add(entry.name)
    prefix = folder.relative_to(root).as_posix()
    return sorted(f"{prefix}/{n}".replace("/", ".") if prefix != "." else n for n in names)


def _functions(body: list[ast.stmt]) -> list[str]:
    """The functions a module defines at its top level: what a handler names, shown when it names another."""
    return sorted(
        n.name for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and not n.name.startswith("_")
    )


def _public(names: set[str]) -> list[str]:
    return sorted(n for n in names if not n.startswith("_"))


def _instead(names: list[str], wanted: str, what: str = "modules there") -> str:
    if not names:
        return ""
    close = difflib.get_close_matches(wanted, [n.rpartition(".")[2] for n in names], n=1)
    shown = ", ".join(names[:_SHOWN]) + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")
    hint = f"; did you mean {next(n for n in names if n.rpartition('.')[2] == close[0])}?" if close else ""
    return f"; {what}: {shown}{hint}"


def top_level_names(body: list[ast.stmt]) -> tuple[set[str], bool]:
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
                inner, inner_opaque = top_level_names(block)
                names |= inner
                opaque |= inner_opaque
    # A module-level __getattr__ (PEP 562) can answer any name.
    return names, opaque or "__getattr__" in names
