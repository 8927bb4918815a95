"""VCS ignore rules: the files of a package that a clean checkout of its repository would not have.

The ``.gitignore`` format of gitignore(5): comments, ``!`` negation, a ``/`` anchoring a pattern to its
file's folder, a trailing ``/`` for folders only, ``*``, ``?``, ``[...]`` and ``**``. Every ``.gitignore``
applies to the folder it is in and below it; a deeper file overrides a higher one, and within a file the
last matching pattern wins. A file inside an ignored folder stays ignored (the walk never enters it).

Read: the ``.gitignore`` files of the package folder's ancestors up to the repository root, and of every
folder below the package folder. Not read: ``.git/info/exclude`` and the user's global excludes file,
which differ from one machine to the next: the same commit must build the same asset everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

IGNORE_FILE = ".gitignore"


@dataclass(frozen=True)
class Pattern:
    regex: re.Pattern[str]
    negated: bool
    dir_only: bool


def parse(text: str) -> list[Pattern]:
    """The patterns of one ``.gitignore`` file, in order."""
    patterns = []
    for raw in text.splitlines():
        line = _strip_trailing_spaces(raw)
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        if negated or line.startswith(("\\!", "\\#")):
            line = line[1:]
        dir_only = line.endswith("/") and not line.endswith("\\/")
        line = line.rstrip("/") if dir_only else line
        if not line:
            continue
        # A slash at the start or in the middle anchors the pattern to the file's folder; otherwise it
        # matches at any depth below it.
        anchored = "/" in line
        line = line.removeprefix("/")
        regex = _translate(line)
        if not anchored:
            regex = "(?:.*/)?" + regex
        patterns.append(Pattern(re.compile(regex, re.DOTALL), negated, dir_only))
    return patterns


def _strip_trailing_spaces(line: str) -> str:
    stripped = line.rstrip(" ")
    if stripped.endswith("\\") and len(stripped) < len(line):
        return stripped[:-1] + " "  # an escaped space is kept
    return stripped


def _translate(pattern: str) -> str:
    """A gitignore glob as a regular expression matching a whole relative path."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**", i):
            before = i == 0 or pattern[i - 1] == "/"
            after = i + 2 == n or pattern[i + 2] == "/"
            if before and after:
                if i + 2 == n:  # "dir/**": everything inside
                    out.append(".*")
                    i += 2
                else:  # "**/x" or "a/**/b": zero or more folders
                    out.append("(?:.*/)?")
                    i += 3
                continue
            out.append("[^/]*")  # other runs of asterisks are plain asterisks
            i += 2
            while i < n and pattern[i] == "*":
                i += 1
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = _class_end(pattern, i)
            if end is None:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end]
                negate = body[:1] in ("!", "^")
                body = body[1:] if negate else body
                escaped = "".join("\\" + ch if ch in "\\^]" else ch for ch in body)
                out.append(f"[{'^' if negate else ''}{escaped}]")
                i = end
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def _class_end(pattern: str, start: int) -> int | None:
    j = start + 1
    if j < len(pattern) and pattern[j] in "!^":
        j += 1
    if j < len(pattern) and pattern[j] == "]":
        j += 1
    while j < len(pattern) and pattern[j] != "]":
        j += 1
    return j if j < len(pattern) else None


@dataclass(frozen=True)
class File:
    """One .gitignore: its patterns, and where it sits relative to the package folder."""

    patterns: tuple[Pattern, ...]
    above: str  # for a file above the package folder: the package folder's path from there ("pkgs/api/")
    below: str  # for a file in or below it: its folder's path from the package folder ("", "src/")

    def match(self, rel: str, is_dir: bool) -> bool | None:
        """True (ignored), False (re-included by a negation) or None (no pattern matches ``rel``)."""
        if not rel.startswith(self.below):
            return None
        path = self.above + rel[len(self.below) :]
        for pattern in reversed(self.patterns):
            if pattern.dir_only and not is_dir:
                continue
            if pattern.regex.fullmatch(path):
                return not pattern.negated
        return None


@dataclass(frozen=True)
class Rules:
    """The ignore rules that apply below a package folder: a walk adds each folder's own file."""

    files: tuple[File, ...] = field(default_factory=tuple)

    @classmethod
    def above(cls, folder: Path, top: Path) -> Rules:
        """The rules of the .gitignore files from ``top`` down to ``folder``'s parent (outermost first)."""
        files = []
        if folder != top and folder.is_relative_to(top):
            for ancestor in reversed(folder.parents):
                if not ancestor.is_relative_to(top):
                    continue
                patterns = _read(ancestor / IGNORE_FILE)
                if patterns:
                    files.append(File(tuple(patterns), folder.relative_to(ancestor).as_posix() + "/", ""))
        return cls(tuple(files))

    def entering(self, folder: Path, prefix: str) -> Rules:
        """These rules and those of ``folder``'s own .gitignore; ``prefix`` is its path from the package
        folder with a final ``/`` ("" for the package folder itself)."""
        patterns = _read(folder / IGNORE_FILE)
        if not patterns:
            return self
        return Rules((*self.files, File(tuple(patterns), "", prefix)))

    def ignored(self, rel: str, *, is_dir: bool) -> bool:
        """Whether the file or folder at ``rel`` (from the package folder, with ``/``) is ignored."""
        for file in reversed(self.files):
            matched = file.match(rel, is_dir)
            if matched is not None:
                return matched
        return False


def _read(path: Path) -> list[Pattern]:
    try:
        return parse(path.read_text(encoding="utf-8", errors="replace"))
    except OSError:  # no such file (the usual case), or not a file
        return []


def repository_root(folder: Path, fallback: Path) -> Path:
    """The folder holding ``.git`` at or above ``folder``; without one, ``fallback`` (the workspace root)
    when it holds ``folder``, else ``folder`` itself."""
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists():
            return candidate
    return fallback if folder.is_relative_to(fallback) else folder
