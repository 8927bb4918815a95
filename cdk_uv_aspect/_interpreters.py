"""Interpreters: a Python of exactly a target's version on this machine, for bytecode and ``cdk-uv invoke``;
with ``runtime_python``, the runtime's Python of another architecture too (under qemu-user).

Looked for in order: the Python running this process, ``uv python find``, pyenv, asdf, mise and Homebrew
installs, and last one uv downloads; each looked up once per process (``_state.TOOLS``). When there is none,
``no_python`` says every way to go on, and what was tried.
"""

from __future__ import annotations

import os
import re
import sys
import sysconfig
import threading
from pathlib import Path

from . import _state
from ._emulation import Emulated, NotEmulated, emulated_python, host_architecture
from ._errors import ToolError, setting
from ._runner import Runner
from ._uv import UV_ENV, Uv


def find_python(uv: str, version: str, runner: Runner | None = None, *, cwd: Path | None = None) -> str | None:
    """An interpreter of exactly ``version`` ("3.12") on this machine: bytecode and ``cdk-uv invoke`` need one.

    In order: the Python running this process when it is that version; the one ``uv python find`` finds;
    pyenv, asdf, mise and Homebrew installs (found even when not selected: a pyenv shim of an unselected
    version makes ``uv python find`` fail); and last, one uv downloads, where uv's ``python-downloads``
    setting (``UV_PYTHON_DOWNLOADS``, uv.toml, ``[tool.uv]`` of the workspace at ``cwd``) lets uv download
    one by itself (its default). Looked up once per process; ``None`` when there is none.
    """
    key = ("python", uv, version)
    with _LOOKING:  # builds side by side wait for one lookup, not one each
        with _state.LOCK:
            if key in _state.TOOLS:
                cached: str | None = _state.TOOLS[key]
                return cached
        runner = runner or Runner()
        found = _running_python(version) or _uv_python(uv, version, runner) or _installed_python(version, runner)
        if found is None:
            found = _downloaded_python(uv, version, runner, cwd)
        with _state.LOCK:
            _state.TOOLS[key] = found
        return found


_LOOKING = threading.Lock()


def runtime_python(
    version: str, arch: str, uv: str | None = None, runner: Runner | None = None
) -> list[str] | NotEmulated | None:
    """The command that starts Python ``version`` of Lambda architecture ``arch`` here: this machine's own
    (``find_python``) for its architecture, another's under qemu-user (``_emulation``); why it can't
    (``NotEmulated``), or None when this machine has no Python ``version``. The invoke, the profile and
    the slimming proof share it."""
    if arch != host_architecture():
        emulated = emulated_python(arch, version)
        return list(emulated.argv) if isinstance(emulated, Emulated) else emulated
    python = find_python(uv or Uv.locate(None).path, version, runner)
    return [python] if python is not None else None


def _running_python(version: str) -> str | None:
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    # CPython only, and not a free-threaded build (its bytecode is not the default build's).
    gil_disabled = sysconfig.get_config_var("Py_GIL_DISABLED")
    if running == version and sys.implementation.name == "cpython" and not gil_disabled and sys.executable:
        return sys.executable
    return None


def _uv_python(uv: str, version: str, runner: Runner) -> str | None:
    result = runner.run(
        [uv, "python", "find", "--no-project", "--no-python-downloads", version],
        env={**UV_ENV, "UV_PYTHON_DOWNLOADS": "never"},
    )
    path = result.stdout.strip()
    return path if result.ok and path else None


def _install_roots() -> dict[str, list[Path]]:
    """Where pyenv, asdf, mise (their folder of versions) and Homebrew (its prefixes) install Pythons."""
    home, env = Path.home(), os.environ
    data = Path(env.get("XDG_DATA_HOME") or home / ".local" / "share")
    brews = [env.get("HOMEBREW_PREFIX"), "/opt/homebrew", "/usr/local", "/home/linuxbrew/.linuxbrew"]
    return {
        "pyenv": [Path(env.get("PYENV_ROOT") or home / ".pyenv") / "versions"],
        "asdf": [Path(env.get("ASDF_DATA_DIR") or home / ".asdf") / "installs" / "python"],
        "mise": [Path(env.get("MISE_DATA_DIR") or data / "mise") / "installs" / "python"],
        "Homebrew": [Path(p) for p in dict.fromkeys(brews) if p],
    }


def python_installs(version: str) -> list[Path]:
    """Where pyenv, asdf, mise and Homebrew put a Python ``version``, newest patch release first."""
    roots = _install_roots()
    release = re.compile(rf"{re.escape(version)}\.(\d+)")
    found: list[tuple[int, Path]] = []
    for root in roots["pyenv"] + roots["asdf"] + roots["mise"]:
        for folder in root.glob(f"{version}.*"):
            if match := release.fullmatch(folder.name):
                found.append((int(match.group(1)), folder / "bin" / f"python{version}"))
    kegs = [prefix / "opt" / f"python@{version}" / "bin" / f"python{version}" for prefix in roots["Homebrew"]]
    return [path for _, path in sorted(found, key=lambda f: -f[0])] + kegs


_SAYS_VERSION = "import sys; print('%d.%d' % sys.version_info[:2], sys.executable)"


def _installed_python(version: str, runner: Runner) -> str | None:
    for candidate in python_installs(version):
        if candidate.is_file():
            result = runner.run([str(candidate), "-I", "-c", _SAYS_VERSION])
            if result.ok and result.stdout.split()[:1] == [version]:
                return str(candidate)
    return None


def _downloaded_python(uv: str, version: str, runner: Runner, cwd: Path | None) -> str | None:
    """The interpreter ``uv run --python`` uses, which uv downloads when python-downloads is "automatic"."""
    result = runner.run(
        [uv, "run", "--no-project", "--python", version, "--", "python", "-I", "-c", _SAYS_VERSION],
        cwd=cwd,
        env={"NO_COLOR": "1", "UV_NO_PROGRESS": "1"},
    )
    answer = result.stdout.split(maxsplit=1)
    if result.ok and len(answer) == 2 and answer[0] == version:
        return answer[1].strip()
    with _state.LOCK:
        _state.TOOLS[("python-download", uv, version)] = result.stderr.strip()
    return None


def no_python(uv: str, version: str, purpose: str, **context: object) -> ToolError:
    """The error for no Python ``version`` (after ``find_python``): every way to go on, and what was tried."""
    with _state.LOCK:
        download = _state.TOOLS.get(("python-download", uv, version)) or ""
    said = " ".join(download.split())[:300]
    return ToolError(
        f"no Python {version} interpreter on this machine to {purpose}",
        fix=f"install Python {version}: `uv python install {version}` (or let uv download it by itself: "
        f'UV_PYTHON_DOWNLOADS=automatic, python-downloads = "automatic"), `pyenv install {version}` (pyenv, asdf, '
        "mise and Homebrew installs are found without being selected), or your OS's package; or point "
        "UV_PYTHON_INSTALL_DIR at the folder of uv-managed Pythons that has it; or build without bytecode, "
        f"{setting('bytecode', 'False')}, at a cost: each cold start compiles the imported modules again, about 40% "
        "more import time",
        details=f"  looked at: this process's Python ({sys.version_info.major}.{sys.version_info.minor}), "
        f"`uv python find {version}`, "
        + ", ".join(f"{name} ({', '.join(map(str, roots))})" for name, roots in _install_roots().items())
        + f"\n  uv download: {said or 'not tried'}",
        **context,  # type: ignore[arg-type]
    )
