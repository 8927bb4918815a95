"""What ships is what the project would publish: files the repository's .gitignore files ignore are never
copied, fingerprinted or deployed, in a git repository or not, for library and application packages."""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from helpers import build_of, call_handler

from cdk_uv_aspect._ignore import Rules, parse
from cdk_uv_aspect._sources import source_files
from cdk_uv_aspect._uv import Uv

GIT = shutil.which("git")
needs_git = pytest.mark.skipif(GIT is None, reason="needs git")
# git without the user's or the system's configuration (no global excludes file).
GIT_ENV = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def git(*args: str, cwd: Path) -> str:
    assert GIT is not None
    return subprocess.run([GIT, *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True, text=True).stdout


def shipped(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


# --- the rules, against git itself ----------------------------------------------------------------

# Each line is a hostile case for the parser: anchoring, negation, folders only, globs, escapes, and
# the rule that nothing inside an ignored folder can be re-included.
ROOT_RULES = """\
# a comment, then a blank line

secrets.json
*.local.py
/pkg/top-only.txt
pkg/docs/*.md
!pkg/docs/keep.md
build-*/
**/generated/**
logs/
!logs/keep.log
\\#hash.txt
\\!bang.txt
trailing-space.txt{spaces}
[abc]-class.txt
[!x]y-negclass.txt
pkg/a/**/z.txt
*.pem
""".format(spaces="   ")  # trailing spaces are not part of a pattern
NESTED_RULES = {
    "pkg/sub/.gitignore": "!*.pem\nonly-here.txt\n/anchored.txt\n",
    "pkg/sub/deeper/.gitignore": "*.pem\n",
    "pkg/.gitignore": "/docs/deep/\n!/build-file\n",
}
TREE = [
    "pkg/secrets.json",
    "pkg/sub/secrets.json",
    "pkg/settings.local.py",
    "pkg/settings.py",
    "pkg/top-only.txt",
    "pkg/sub/top-only.txt",
    "pkg/docs/readme.md",
    "pkg/docs/keep.md",
    "pkg/docs/deep/readme.md",
    "pkg/build-1/out.py",
    "pkg/build-file",
    "pkg/docs/deep/keep.md",
    "pkg/x/generated/a.py",
    "pkg/generated",
    "pkg/logs/keep.log",
    "pkg/#hash.txt",
    "pkg/!bang.txt",
    "pkg/trailing-space.txt",
    "pkg/a-class.txt",
    "pkg/d-class.txt",
    "pkg/ay-negclass.txt",
    "pkg/xy-negclass.txt",
    "pkg/a/z.txt",
    "pkg/a/b/c/z.txt",
    "pkg/key.pem",
    "pkg/sub/key.pem",
    "pkg/sub/deeper/key.pem",
    "pkg/sub/only-here.txt",
    "pkg/only-here.txt",
    "pkg/sub/anchored.txt",
    "pkg/sub/more/anchored.txt",
    "pkg/src/mod.py",
]


@needs_git
def test_the_rules_agree_with_git_on_every_case(tmp_path: Path):
    """A tree of 32 files under 21 root patterns and three nested .gitignore files: the files kept are
    exactly those `git ls-files --others --exclude-standard` lists (git without global excludes)."""
    repo = tmp_path / "repo"
    write(repo, {rel: "x" for rel in TREE})
    write(repo, {".gitignore": ROOT_RULES, **NESTED_RULES})
    git("init", "-q", ".", cwd=repo)
    listed = git("ls-files", "--others", "--exclude-standard", "-z", "pkg", cwd=repo).split("\0")
    by_git = {rel.removeprefix("pkg/") for rel in listed if rel}
    ours = set(source_files(repo / "pkg", repo))
    assert ours == by_git
    # and the cases are not vacuous: both kinds are there
    assert "secrets.json" not in ours and "settings.py" in ours and "docs/keep.md" in ours


def test_a_deeper_file_overrides_a_higher_one_and_the_last_pattern_wins(tmp_path: Path):
    write(tmp_path, {".gitignore": "*.pem\n", "pkg/sub/.gitignore": "!public.pem\n*.pem\n!public.pem\n"})
    rules = Rules.above(tmp_path / "pkg", tmp_path).entering(tmp_path / "pkg" / "sub", "sub/")
    assert rules.ignored("sub/private.pem", is_dir=False)
    assert not rules.ignored("sub/public.pem", is_dir=False)
    assert rules.ignored("public.pem", is_dir=False)  # the nested file does not apply above its folder


def test_patterns_for_folders_do_not_match_files():
    [pattern] = parse("cache/\n")
    assert pattern.dir_only and pattern.regex.fullmatch("cache")


def test_rules_above_a_package_are_read_relative_to_their_own_folder(tmp_path: Path):
    """The repository root's `/packages/api/local.cfg` is anchored there, not at the package."""
    write(tmp_path, {".gitignore": "/packages/api/local.cfg\n/local.cfg\n"})
    rules = Rules.above(tmp_path / "packages" / "api", tmp_path)
    assert rules.ignored("local.cfg", is_dir=False)
    assert not rules.ignored("sub/local.cfg", is_dir=False)


# --- what ships ---------------------------------------------------------------------------------------

SECRETS = {
    "packages/api/src/api/secrets.json": '{"password": "hunter2"}',
    "packages/api/src/api/settings.local.py": "DEBUG = True\n",
    "packages/api/src/api/certs/private.pem": "KEY",
    "packages/api/src/api/certs/public.pem": "CERT",
    "packages/app/helpers/settings.local.py": "DEBUG = True\n",
    "packages/app/secrets.json": '{"password": "hunter2"}',
}
IGNORES = {
    ".gitignore": "secrets.json\nsettings.local.py\n",
    "packages/api/src/api/certs/.gitignore": "*.pem\n!public.pem\n",
}
LEAKS = ("secrets.json", "settings.local.py", "private.pem")


def assert_nothing_ignored_ships(asset: Path) -> None:
    files = shipped(asset)
    leaked = [f for f in files if f.endswith(LEAKS)]
    assert leaked == [], f"ignored files shipped: {leaked}"


@pytest.mark.slow
@pytest.mark.parametrize("vcs", ["git", "no-git"])
def test_ignored_files_never_ship(workspace: Path, cache_dir: Path, vcs: str):
    """A root .gitignore and a nested one with a negation, in a git repository and in a plain folder
    (a CI source archive): neither the library nor the application package ships an ignored file."""
    if vcs == "git":
        if GIT is None:
            pytest.skip("needs git")
        git("init", "-q", ".", cwd=workspace)
    write(workspace, {**SECRETS, **IGNORES})
    api = build_of(workspace, "api").asset_dir
    assert_nothing_ignored_ships(api)
    assert "api/certs/public.pem" in shipped(api)  # re-included by the nested negation
    assert call_handler(api, "api.handler.main", "3.12").ok
    app = build_of(workspace, "app").asset_dir
    assert_nothing_ignored_ships(app)
    assert {"main.py", "helpers/text.py"} <= shipped(app)


@pytest.mark.slow
@needs_git
def test_what_ships_matches_a_build_in_place(workspace: Path, cache_dir: Path, tmp_path: Path):
    """`uv build` of the package where it is (hatchling reads the repository's .gitignore) and the
    aspect's build from its private copy put the same files of the package into the function."""
    git("init", "-q", ".", cwd=workspace)
    write(workspace, {**SECRETS, ".gitignore": IGNORES[".gitignore"]})
    out = tmp_path / "in-place"
    subprocess.run(
        [Uv.locate(None).path, "build", "--wheel", "--quiet", "--out-dir", str(out), "packages/api"],
        cwd=workspace,
        check=True,
        capture_output=True,
    )
    with zipfile.ZipFile(next(out.glob("*.whl"))) as wheel:
        in_place = {n for n in wheel.namelist() if n.startswith("api/")}
    asset = build_of(workspace, "api").asset_dir
    assert {f for f in shipped(asset) if f.startswith("api/") and not f.endswith(".pyc")} == in_place


@pytest.mark.slow
def test_editing_an_ignored_file_rebuilds_nothing(workspace: Path, cache_dir: Path):
    """The build key covers exactly the files copied: a change to an ignored file is no change."""
    write(workspace, {**SECRETS, **IGNORES})
    first = build_of(workspace, "api")
    write(workspace, {"packages/api/src/api/secrets.json": '{"password": "changed"}'})
    again = build_of(workspace, "api")
    assert again.cached and again.entry == first.entry


@pytest.mark.slow
def test_hatch_artifacts_ship_although_ignored(workspace: Path, cache_dir: Path):
    """hatchling's `artifacts` include a generated, ignored file in the wheel: so does the aspect."""
    write(
        workspace,
        {
            ".gitignore": "generated.json\nsecrets.json\n",
            "packages/api/src/api/generated.json": "{}",
            "packages/api/src/api/secrets.json": "{}",
        },
    )
    pyproject = workspace / "packages" / "api" / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + '\n[tool.hatch.build]\nartifacts = ["generated.json"]\n')
    files = shipped(build_of(workspace, "api").asset_dir)
    assert "api/generated.json" in files and "api/secrets.json" not in files


@pytest.mark.slow
def test_a_gitignore_above_the_build_cache_changes_nothing(workspace: Path, tmp_path: Path):
    """A .gitignore above the private copy (a home folder's `*.py`, say) is not the package's: hatchling
    would read it there, so the copy carries its own."""
    home = tmp_path / "home"
    write(home, {".gitignore": "*.py\n"})
    asset = build_of(workspace, "api", cache_dir=home / ".cache" / "cdk-uv").asset_dir
    assert {"api/handler.py", "common/__init__.py"} <= shipped(asset)
