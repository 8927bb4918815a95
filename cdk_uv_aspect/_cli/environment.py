"""The environment a local run gives a function: its literal variables, and values the user gives for the rest.

A template's variable whose value is a CloudFormation expression (``{"Ref": "Table"}``, ``Fn::GetAtt``...)
is known only at deploy time: a local run can't have it, says so, and takes a value for it from
``--env NAME=VALUE`` or an env file. An env file is read as SAM's ``--env-vars`` file when it is JSON
(``{"<function>": {...}, "Parameters": {...}}``, the function named by its logical id, construct path or
construct id; ``Parameters`` sets only the variables the function has, as SAM does), else as a dotenv
file (``NAME=VALUE`` lines, ``export``, quotes, ``#`` comments).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._assembly import AssemblyFunction
from .._start import RESERVED
from .common import UsageError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


def environment(fn: AssemblyFunction, given: Sequence[str], env_file: str | None) -> dict[str, str]:
    """The function's variables for a local run: its literal values, then the env file's, then ``--env``'s."""
    values = dict(fn.environment)
    if env_file is not None:
        values.update(_from_file(fn, Path(env_file)))
    for item in given:
        name, sep, value = item.partition("=")
        if not sep or not _NAME.fullmatch(name):
            raise UsageError(f"--env takes NAME=VALUE, got {item!r}")
        values[name] = value
    reserved = sorted(set(values) & set(RESERVED) - set(fn.environment))
    if reserved:
        raise UsageError(
            f"{', '.join(reserved)}: reserved by Lambda, a function can't set {'them' if len(reserved) > 1 else 'it'} "
            "(AWS_REGION follows your shell's AWS_REGION or AWS_DEFAULT_REGION)"
        )
    return values


def unset(fn: AssemblyFunction, values: dict[str, str]) -> str:
    """The line saying which deploy-time variables have no value in this run ("" when none)."""
    missing = {name: value for name, value in fn.deploy_time.items() if name not in values}
    if not missing:
        return ""
    shown = ", ".join(f"{name} ({json.dumps(value, separators=(',', ':'))})" for name, value in sorted(missing.items()))
    return (
        f"cdk-uv: {fn.path}: left out, set only at deploy time: {shown}; give values with --env NAME=VALUE "
        "or --env-file FILE"
    )


def _from_file(fn: AssemblyFunction, path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"can't read the env file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if text.lstrip().startswith("{"):
        return _sam(fn, path, text)
    return _dotenv(path, text)


def _sam(fn: AssemblyFunction, path: Path, text: str) -> dict[str, str]:
    """SAM's ``--env-vars`` file: ``Parameters`` for every function's own variables, then the function's entry."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"the env file {path} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"the env file {path} must hold an object of functions, as SAM's --env-vars file")
    declared = set(fn.environment) | set(fn.deploy_time)
    values = {name: value for name, value in _section(data, "Parameters", path).items() if name in declared}
    names = [fn.logical_id, fn.path, fn.path.rsplit("/", 1)[-1]]
    for name in names:
        if name and name in data:
            values.update(_section(data, name, path))
            break
    return values


def _section(data: dict[str, Any], key: str, path: Path) -> dict[str, str]:
    section = data.get(key) or {}
    if not isinstance(section, dict):
        raise UsageError(f"the env file {path}: {key!r} must map variable names to values")
    return {str(name): value if isinstance(value, str) else json.dumps(value) for name, value in section.items()}


def _dotenv(path: Path, text: str) -> dict[str, str]:
    values = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not _NAME.fullmatch(name):
            raise UsageError(f"the env file {path}, line {number}: expected NAME=VALUE, got {raw.strip()!r}")
        values[name] = _value(value.strip(), path, number)
    return values


def _value(text: str, path: Path, number: int) -> str:
    if text[:1] in ("'", '"'):
        quote = text[0]
        end = _closing(text, quote)
        if end < 0:
            raise UsageError(f"the env file {path}, line {number}: the value's {quote} is never closed")
        inner = text[1:end]
        return inner if quote == "'" else re.sub(r"\\(.)", lambda m: _ESCAPES.get(m[1], m[0]), inner)
    return re.split(r"\s+#", text, maxsplit=1)[0].rstrip()


def _closing(text: str, quote: str) -> int:
    i = 1
    while i < len(text):
        if text[i] == "\\" and quote == '"':
            i += 2
            continue
        if text[i] == quote:
            return i
        i += 1
    return -1
