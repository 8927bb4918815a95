"""Names and versions, as uv and pip write them: one place for each rule. CDK-free.

- a package, extra or group name (PEP 508, ASCII only), and its normalized form (PEP 503, as uv.lock
  writes names and uv compares them);
- a pinned requirement, ``name==version`` (``name[extra]==version``), as ``uv export`` writes it;
- a Python version of Lambda, ``3.12``.
"""

from __future__ import annotations

import re
from typing import TypeGuard

# PEP 508 names, ASCII only: anything else (path separators, '..', shell metacharacters, look-alike
# letters, a line break) is refused before it reaches a path or a command line. Always ``fullmatch``:
# with ``match``, ``$`` also matches before a final line break, and "orders\n" would pass.
_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")

# A requirement of `uv export`: "name==version" or "name[extra]==version", then hashes or a marker.
_PINNED = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*([^\s;\\]+)")

PYTHON_PATTERN = re.compile(r"3\.\d+")
"""A Python version as a Lambda runtime names it, minor included: ``3.12`` (match it whole)."""


def is_name(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a PEP 508 name (a package, an extra, a group), in ASCII."""
    return isinstance(value, str) and _NAME.fullmatch(value) is not None


def normalize(name: str) -> str:
    """PEP 503 normalization, as uv writes names in uv.lock: ``Foo_Bar.baz`` -> ``foo-bar-baz``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned(requirement: str) -> tuple[str, str] | None:
    """``(normalized name, version)`` of a pinned requirement (``name==version``, ``name[extra]==version``,
    hashes or a marker after it); None for anything else (a path, a URL, a range)."""
    match = _PINNED.match(requirement)
    return (normalize(match.group(1)), match.group(2)) if match else None


def pins(text: str) -> dict[str, str]:
    """The pinned requirements of ``uv export`` output: normalized name -> version."""
    return dict(found for line in text.splitlines() if (found := pinned(line)) is not None)


def is_python_version(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a Python version such as ``"3.12"``."""
    return isinstance(value, str) and PYTHON_PATTERN.fullmatch(value) is not None
