"""The build cache: reuse only intact entries, rebuild damaged ones, share entries between synths, prune."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_
from fakes import ScriptedRunner, uv_command
from helpers import FIXTURES, add_function, build_of, call_handler, function_codes, synth_app, tree_digest

from cdk_uv_aspect import UvOptions, _state
from cdk_uv_aspect._assembly import functions
from cdk_uv_aspect._cache import INFO, manifest
from cdk_uv_aspect._cli import main as cli
from cdk_uv_aspect._errors import SettingError
from cdk_uv_aspect._prune import prune
from cdk_uv_aspect._wheels import BATCH

pytestmark = pytest.mark.slow


def _synth_api(workspace: Path, outdir: Path, **options: object) -> tuple[dict, dict]:
    """Synthesize one function of package `api` into ``outdir``: its Code property and uv:build metadata."""
    _, stack = synth_app(workspace, lambda s: add_function(s, "Api", "api"), outdir=outdir, **options)
    (function,) = functions(outdir)
    (code,) = function_codes(stack).values()
    return code, function.build.as_data()  # the uv:build record as written into the assembly


def _entries(cache_dir: Path) -> list[Path]:
    return sorted((cache_dir / "builds").iterdir())


@dataclass(frozen=True)
class Synthesized:
    cache: Path  # the build cache of the synth: one entry, for `api`
    code: dict  # the function's Code property


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """`api` synthesized once, cold, into a build cache of its own."""
    root = tmp_path_factory.mktemp("synthesized")
    workspace = Path(shutil.copytree(FIXTURES / "ws", root / "ws"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CDK_UV_CACHE_DIR", str(root / "cache"))
        code, built = _synth_api(workspace, root / "out")
    _state.reset()
    assert built["cached"] is False
    return Synthesized(root / "cache", code)


def synthesized_into(cache_dir: Path, synthesized: Synthesized) -> dict:
    """The cache of a first synth of `api` as ``cache_dir``, its Code property: a copy of the module's, which
    a damaging test may change (builds are reproducible: building it again in each test gives the same)."""
    shutil.copytree(synthesized.cache, cache_dir, symlinks=True)
    return synthesized.code


def _truncate(asset: Path) -> None:
    target = asset / "api" / "handler.py"
    target.write_bytes(target.read_bytes()[:10])


def _edit_same_size(asset: Path) -> None:
    target = asset / "common" / "__init__.py"
    text = target.read_text()
    target.write_text(text.replace("hello", "HELLO"))


def _delete(asset: Path) -> None:
    (asset / "api" / "handler.py").unlink()


def _add(asset: Path) -> None:
    (asset / "api" / "extra.py").write_text("x = 1\n")


def _drop_build_json(asset: Path) -> None:
    (asset.parent / INFO).unlink()


def _half_written_build_json(asset: Path) -> None:
    info = asset.parent / INFO
    info.write_text(info.read_text()[:100])


@pytest.mark.parametrize(
    "damage", [_truncate, _edit_same_size, _delete, _add, _drop_build_json, _half_written_build_json]
)
def test_damaged_entry_is_rebuilt_not_used(
    workspace: Path, cache_dir: Path, tmp_path: Path, synthesized: Synthesized, damage
):
    """Edited, truncated, deleted or extra files, or a missing/partial build.json: the entry is rebuilt."""
    first = synthesized_into(cache_dir, synthesized)
    (entry,) = _entries(cache_dir)
    intact = tree_digest(entry / "asset")

    damage(entry / "asset")
    second, rebuilt = _synth_api(workspace, tmp_path / "two")

    assert rebuilt["cached"] is False
    assert _entries(cache_dir) == [entry]
    assert tree_digest(entry / "asset") == intact
    assert second == first
    answer = call_handler(entry / "asset", "api.handler.main", "3.12", {"name": "x"})
    assert answer.result["message"] == "hello x"


def _tampered_copy(entry: Path, elsewhere: Path) -> Path:
    """A copy of ``entry`` outside the cache whose handler answers otherwise, its build.json made to match:
    what an entry that is not ours would hold if it were used."""
    copy = Path(shutil.copytree(entry, elsewhere / entry.name, symlinks=True))
    handler = copy / "asset" / "api" / "handler.py"
    handler.write_text(handler.read_text().replace('"hello', '"pwned'))
    info = json.loads((copy / INFO).read_text())
    info["manifest"] = manifest(copy / "asset")
    (copy / INFO).write_text(json.dumps(info))
    return copy


def _entry_a_link(entry: Path, elsewhere: Path) -> None:
    copy = _tampered_copy(entry, elsewhere)
    shutil.rmtree(entry)
    entry.symlink_to(copy, target_is_directory=True)


def _entry_a_dangling_link(entry: Path, elsewhere: Path) -> None:
    shutil.rmtree(entry)
    entry.symlink_to(elsewhere / "gone", target_is_directory=True)


def _asset_a_link(entry: Path, elsewhere: Path) -> None:
    copy = _tampered_copy(entry, elsewhere)
    shutil.rmtree(entry / "asset")
    (entry / "asset").symlink_to(copy / "asset", target_is_directory=True)
    shutil.copy2(copy / INFO, entry / INFO)


def _build_json_a_link(entry: Path, elsewhere: Path) -> None:
    copy = _tampered_copy(entry, elsewhere)
    shutil.rmtree(entry / "asset")
    shutil.copytree(copy / "asset", entry / "asset", symlinks=True)
    (entry / INFO).unlink()
    (entry / INFO).symlink_to(copy / INFO)


def _sbom_a_link(entry: Path, elsewhere: Path) -> None:
    elsewhere.mkdir()
    shutil.move(entry / "sbom.cdx.json", elsewhere / "sbom.cdx.json")
    (entry / "sbom.cdx.json").symlink_to(elsewhere / "sbom.cdx.json")


def _owned_by_another_user(entry: Path, elsewhere: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("giving an entry to another user needs root")
    handler = entry / "asset" / "api" / "handler.py"
    handler.write_text(handler.read_text().replace('"hello', '"pwned'))  # what that user could do
    info = json.loads((entry / INFO).read_text())
    info["manifest"] = manifest(entry / "asset")
    (entry / INFO).write_text(json.dumps(info))
    for path in [entry, *entry.rglob("*")]:
        os.chown(path, 4242, 4242, follow_symlinks=False)


def _a_file_of_the_asset_owned_by_another_user(entry: Path, elsewhere: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("giving a file to another user needs root")
    os.chown(entry / "asset" / "api" / "handler.py", 4242, 4242)


def _something_else_beside_the_asset(entry: Path, elsewhere: Path) -> None:
    (entry / "run-me.sh").write_text("#!/bin/sh\n")  # not laid out as ours


def _beside_names_a_file_outside(entry: Path, elsewhere: Path) -> None:
    elsewhere.mkdir()
    (elsewhere / "secret").write_text("a file of the user's")
    info = json.loads((entry / INFO).read_text())
    info["beside"] = {"../../../elsewhere/secret": hashlib.sha256(b"a file of the user's").hexdigest()}
    (entry / INFO).write_text(json.dumps(info))


def _manifest_of_another_shape(entry: Path, elsewhere: Path) -> None:
    info = json.loads((entry / INFO).read_text())
    info["manifest"] = {rel: "not a list" for rel in info["manifest"]}
    (entry / INFO).write_text(json.dumps(info))


@pytest.mark.parametrize(
    "make",
    [
        _entry_a_link,
        _entry_a_dangling_link,
        _asset_a_link,
        _build_json_a_link,
        _sbom_a_link,
        _owned_by_another_user,
        _a_file_of_the_asset_owned_by_another_user,
        _something_else_beside_the_asset,
        _beside_names_a_file_outside,
        _manifest_of_another_shape,
    ],
)
def test_an_entry_that_is_not_provably_ours_is_rebuilt_not_used(
    workspace: Path, cache_dir: Path, tmp_path: Path, synthesized: Synthesized, make
):
    """An entry that is a link, holds a link where we write files, belongs to another user (a CI cache
    restored as root), or is laid out otherwise is never used, even when its manifest matches: the synth
    builds again, the entry becomes a real folder of this user's, and what the links led to is left as it was."""
    first = synthesized_into(cache_dir, synthesized)
    (entry,) = _entries(cache_dir)
    intact = tree_digest(entry / "asset")
    elsewhere = tmp_path / "elsewhere"

    make(entry, elsewhere)
    before = tree_digest(elsewhere) if elsewhere.exists() else None
    second, rebuilt = _synth_api(workspace, tmp_path / "two")

    assert rebuilt["cached"] is False
    assert second == first
    assert _entries(cache_dir) == [entry]
    assert not entry.is_symlink() and entry.stat().st_uid == os.getuid()
    assert not any(p.is_symlink() for p in entry.iterdir())
    assert tree_digest(entry / "asset") == intact
    assert (tree_digest(elsewhere) if elsewhere.exists() else None) == before
    staged = tmp_path / "two" / f"asset.{second['S3Key'].removesuffix('.zip')}"
    assert call_handler(staged, "api.handler.main", "3.12", {"name": "x"}).result["message"] == "hello x"


def test_a_cached_wheel_that_is_a_link_is_built_again_not_used(workspace: Path, cache_dir: Path, tmp_path: Path):
    """The wheel cache's entries go through the same checks: a link to a copy elsewhere is not used."""
    runner = ScriptedRunner()
    build_of(workspace, "api", runner)
    (entry,) = (cache_dir / "wheels").glob("common-*")
    copy = shutil.copytree(entry, tmp_path / "elsewhere" / entry.name, symlinks=True)
    shutil.rmtree(entry)
    entry.symlink_to(copy, target_is_directory=True)
    handler = workspace / "packages" / "api" / "src" / "api" / "handler.py"
    handler.write_text(handler.read_text() + "\nEDITED = True\n")  # so that `api` itself is a miss
    runner.calls.clear()
    build_of(workspace, "api", runner)
    assert sorted(built_packages(runner)) == ["api", "common"]
    assert not entry.is_symlink() and entry.is_dir()
    assert Path(copy).is_dir()


def test_intact_entry_is_reused_even_with_new_mtimes(workspace: Path, cache_dir: Path, tmp_path: Path):
    """An entry restored with new mtimes (a CI cache) is checked by content once, then used as it is."""
    first, _ = _synth_api(workspace, tmp_path / "one")
    (entry,) = _entries(cache_dir)
    for path in (entry / "asset").rglob("*"):
        os.utime(path, (1_000_000_000, 1_000_000_000))

    second, again = _synth_api(workspace, tmp_path / "two")

    assert again["cached"] is True
    assert second == first
    recorded = json.loads((entry / INFO).read_text())["manifest"]
    assert all(mtime == 1_000_000_000 * 10**9 for _, mtime, _ in recorded.values())


def test_changed_source_in_a_closure_member_is_a_miss(workspace: Path, cache_dir: Path, tmp_path: Path):
    """Editing `common` (a dependency of `api`) rebuilds `api`, and the new asset runs the new code."""
    first, _ = _synth_api(workspace, tmp_path / "one")
    source = workspace / "packages" / "common" / "src" / "common" / "__init__.py"
    source.write_text(source.read_text().replace('"hello"', '"howdy"'))

    second, built = _synth_api(workspace, tmp_path / "two")

    assert built["cached"] is False
    assert second != first
    staged = tmp_path / "two" / f"asset.{second['S3Key'].removesuffix('.zip')}"
    assert call_handler(staged, "api.handler.main", "3.12", {"name": "x"}).result["message"] == "howdy x"


def built_packages(runner: ScriptedRunner) -> list[str]:
    """The packages `uv build` built, and those a backend process built together, in order."""
    built = []
    for call in runner.calls:
        if uv_command("build")(call):
            built.append(Path(call[-1]).name)
        elif BATCH in call:
            built += [Path(source).name for source, _ in json.loads(call[-1])]
    return built


def test_a_shared_local_package_is_built_once_while_its_sources_are_unchanged(workspace: Path, cache_dir: Path):
    """`common` serves `api` and `app` from one wheel; an edit to `api` rebuilds `api` alone; an edit to
    `common` builds it again, and the asset holds the new code."""
    runner = ScriptedRunner()
    build_of(workspace, "api", runner)
    build_of(workspace, "app", runner)  # an application package: only its dependency `common` is a wheel
    assert sorted(built_packages(runner)) == ["api", "common"]

    handler = workspace / "packages" / "api" / "src" / "api" / "handler.py"
    handler.write_text(handler.read_text() + "\nEDITED = True\n")
    runner.calls.clear()
    built = build_of(workspace, "api", runner)
    assert built_packages(runner) == ["api"]
    assert "EDITED = True" in (built.asset_dir / "api" / "handler.py").read_text()

    common = workspace / "packages" / "common" / "src" / "common" / "__init__.py"
    common.write_text(common.read_text().replace('"hello"', '"howdy"'))
    runner.calls.clear()
    built = build_of(workspace, "app", runner)
    assert built_packages(runner) == ["common"]
    assert '"howdy"' in (built.asset_dir / "common" / "__init__.py").read_text()


def test_a_damaged_cached_wheel_is_built_again_not_used(workspace: Path, cache_dir: Path):
    runner = ScriptedRunner()
    build_of(workspace, "api", runner)
    (wheel,) = (cache_dir / "wheels").glob("common-*/asset/*.whl")
    wheel.write_bytes(b"not a wheel")
    handler = workspace / "packages" / "api" / "src" / "api" / "handler.py"
    handler.write_text(handler.read_text() + "\nEDITED = True\n")  # so that `api` itself is a miss
    runner.calls.clear()
    built = build_of(workspace, "api", runner)
    assert sorted(built_packages(runner)) == ["api", "common"]
    assert call_handler(built.asset_dir, "api.handler.main", "3.12", {"name": "x"}).result["message"] == "hello x"


def test_rebuild_bypasses_and_replaces_the_entry(workspace: Path, cache_dir: Path, tmp_path: Path):
    """UvOptions(rebuild=True) builds again although cached, and leaves one entry with the same content."""
    first, _ = _synth_api(workspace, tmp_path / "one")
    second, built = _synth_api(workspace, tmp_path / "two", rebuild=True)
    assert built["cached"] is False
    assert second == first
    assert len(_entries(cache_dir)) == 1


def test_rebuild_is_on_when_the_environment_says_so(monkeypatch: pytest.MonkeyPatch):
    """CDK_UV_REBUILD=1 turns the bypass on without touching the app's code."""
    monkeypatch.setenv("CDK_UV_REBUILD", "1")
    assert UvOptions().rebuild is True
    monkeypatch.setenv("CDK_UV_REBUILD", "0")
    assert UvOptions().rebuild is False


SYNTH = """
import sys
sys.path.insert(0, {tests!r})
from helpers import add_function, function_codes, synth_app
_, stack = synth_app({workspace!r}, lambda s: add_function(s, "Api", "api"), outdir={outdir!r})
print(list(function_codes(stack).values())[0]["S3Key"])
"""


def test_two_synths_at_once_publish_one_intact_entry(workspace: Path, cache_dir: Path, tmp_path: Path):
    """Two processes building the same package at once: both succeed, one entry, no leftovers."""
    procs = []
    for name in ("one", "two"):
        script = SYNTH.format(tests=str(Path(__file__).parent), workspace=str(workspace), outdir=str(tmp_path / name))
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", script],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=os.environ,
            )
        )
    outputs = [p.communicate(timeout=600) for p in procs]
    results = [(p.returncode, out, err) for p, (out, err) in zip(procs, outputs, strict=True)]

    for code, _, err in results:
        assert code == 0, err
    assert results[0][1] == results[1][1]
    assert [p.name for p in (cache_dir / "builds").iterdir()] == [p.name for p in _entries(cache_dir)]
    (entry,) = _entries(cache_dir)
    assert not entry.name.startswith(".")
    again, built = _synth_api(workspace, tmp_path / "three")
    assert built["cached"] is True
    assert again["S3Key"] == results[0][1].strip()


def _key(name: str) -> str:
    """A folder name as the library makes one: readable name, then 32 hex digits."""
    return f"{name}-{hashlib.sha256(name.encode()).hexdigest()[:32]}"


def _fake_entry(cache_dir: Path, name: str, age_days: float, *, kind: str = "builds", info: object = None) -> Path:
    """An entry as the library writes one (asset/ and a build.json naming the package and its files)."""
    entry = cache_dir / kind / name
    entry.parent.mkdir(parents=True, exist_ok=True)
    entry.mkdir(mode=0o700)  # as mkdtemp makes every folder the library writes here
    (entry / "asset").mkdir()
    (entry / "asset" / "index.py").write_text("x = 1\n")
    default = {"package": "api", "manifest": {"index.py": [6, 0, "0" * 64]}}
    (entry / INFO).write_text(json.dumps(default if info is None else info) + "\n")
    _age(entry, age_days)
    return entry


def _age(path: Path, days: float) -> None:
    stamp = time.time() - days * 86400
    for p in [*path.rglob("*"), path] if path.is_dir() and not path.is_symlink() else [path]:
        os.utime(p, (stamp, stamp), follow_symlinks=False)


def test_prune_removes_entries_unused_for_days(cache_dir: Path, capsys: pytest.CaptureFixture[str]):
    """`cdk-uv cache prune --older-than 7` removes old entries and abandoned build folders only."""
    old = _fake_entry(cache_dir, _key("old"), 10)
    fresh = _fake_entry(cache_dir, _key("fresh"), 1)
    abandoned = _fake_entry(cache_dir, f".{_key('fresh')}.abc12345", 2)
    old_wheel = _fake_entry(cache_dir, _key("common"), 10, kind="wheels")

    assert cli(["cache", "prune", "--older-than", "7"]) == 0

    assert not old.exists() and not abandoned.exists() and not old_wheel.exists()
    assert fresh.exists()
    assert "removed 3" in capsys.readouterr().out


def _users_own_folders(cache_dir: Path, tmp_path: Path) -> dict[Path, str]:
    """Folders and files a user keeps in the build cache, none written by the library: path -> content."""
    mine = tmp_path / "precious"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    made = {
        cache_dir / "builds" / "notes" / "todo.txt": "call the bank",
        cache_dir / "builds" / ".backup" / "data.json": "{}",
        cache_dir / "builds" / "orders" / INFO: '{"owner": "me"}',  # a build.json of another shape
        cache_dir / "builds" / _key("lookalike") / "readme.md": "named like ours, holds nothing of ours",
        cache_dir / "builds" / f".{_key('lookalike')}.abcd1234" / "readme.md": "named like a build folder",
        cache_dir / "builds" / "plain-file.txt": "a file, not a folder",
        cache_dir / "wheels" / "vendored" / "asset" / "x-1.0-py3-none-any.whl": "a wheel I put here",
        cache_dir / "images" / "base" / "Dockerfile": "FROM scratch",
    }
    for path, text in made.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    # Named exactly like an entry or a build folder, and holding an asset/ folder (but no build.json of ours):
    for name in (_key("orders"), f".{_key('orders')}.abcd1234", f".trash-{_key('orders')}-12-34"):
        (cache_dir / "builds" / name / "asset").mkdir(parents=True)
        (cache_dir / "builds" / name / "asset" / "notes.md").write_text("my notes")
        made[cache_dir / "builds" / name / "asset" / "notes.md"] = "my notes"
    (cache_dir / "builds" / _key("link")).symlink_to(mine, target_is_directory=True)
    (cache_dir / "wheels" / "link-to-home").symlink_to(mine, target_is_directory=True)
    # Laid out as ours, but its build.json is a link to a file of the user's that looks like one.
    fake = _fake_entry(cache_dir, _key("linked-info"), 400, kind="wheels")
    (tmp_path / "my-build.json").write_text((fake / INFO).read_text())
    (fake / INFO).unlink()
    (fake / INFO).symlink_to(tmp_path / "my-build.json")
    made[tmp_path / "my-build.json"] = (tmp_path / "my-build.json").read_text()
    made[fake / "asset" / "index.py"] = "x = 1\n"
    if os.geteuid() == 0:  # an entry of another user's, as a CI cache restored as root would leave it
        theirs = _fake_entry(cache_dir, _key("restored"), 400)
        for path in [theirs, *theirs.rglob("*")]:
            os.chown(path, 4242, 4242)
        made[theirs / "asset" / "index.py"] = "x = 1\n"
    made[mine / "thesis.tex"] = "years of work"
    for folder in ("builds", "wheels", "images"):
        for path in (cache_dir / folder).iterdir():
            _age(path, 400)
    return made


def test_prune_deletes_only_what_this_library_wrote(
    cache_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """A user's own folders, files and links under builds/, wheels/ and images/ (a year old, some named
    like ours, some holding an asset/ folder, one with a build.json of its own, one with a link for its
    build.json, one of another user's) survive `cache prune --older-than 0`; ours go."""
    ours = [_fake_entry(cache_dir, _key("api"), 40), _fake_entry(cache_dir, f".trash-{_key('api')}-12-34", 2)]
    theirs = _users_own_folders(cache_dir, tmp_path)

    assert cli(["cache", "prune", "--older-than", "0"]) == 0

    assert [p for p in ours if p.exists()] == []
    assert {p: p.read_text() for p in theirs} == theirs
    assert (cache_dir / "builds" / _key("link")).is_symlink() and (cache_dir / "wheels" / "link-to-home").is_symlink()
    assert "removed 2 entries" in capsys.readouterr().out
    assert cli(["cache", "info"]) == 0
    assert "0 build(s), 0 local wheel(s)" in capsys.readouterr().out
    _remove_dot_folders(cache_dir)


def _remove_dot_folders(cache_dir: Path) -> None:
    """The user's folders named like build folders (".backup"): removed here, as the fixture that
    catches half-written builds would take them for ours."""
    for path in (cache_dir / "builds").glob(".*"):
        shutil.rmtree(path)


@pytest.mark.parametrize("days", ["-1", "nan", "inf", "-inf", "1e999", "a week"])
def test_prune_refuses_nonsensical_ages(cache_dir: Path, capsys: pytest.CaptureFixture[str], days: str):
    """A negative, NaN or infinite age (or no number) is a usage error that names the value; nothing goes."""
    entry = _fake_entry(cache_dir, _key("api"), 40)
    with pytest.raises(SystemExit) as exit:
        cli(["cache", "prune", f"--older-than={days}"])
    assert exit.value.code == 2
    assert f"{days!r} is not a number of days" in capsys.readouterr().err
    assert entry.exists()


@pytest.mark.parametrize("days", [-1, float("nan"), float("inf")])
def test_nonsensical_ages_are_refused_by_the_library_too(cache_dir: Path, days: float):
    """prune() and UvOptions(cache_days=...) refuse them as well: -1 would delete every entry in use."""
    entry = _fake_entry(cache_dir, _key("api"), 0)
    with pytest.raises(SettingError, match=r"(?s)can't be used to prune.*fix:"):
        prune(cache_dir, days)
    with pytest.raises(ValueError, match="cache_days"):
        UvOptions(cache_days=days)
    assert entry.exists()


def test_cache_info_names_the_location(cache_dir: Path, capsys: pytest.CaptureFixture[str]):
    """`cdk-uv cache info` says where the cache is and what it holds."""
    _fake_entry(cache_dir, _key("one"), 1)
    assert cli(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert str(cache_dir) in out and "1 build" in out


def test_a_synth_that_builds_prunes_old_entries(workspace: Path, cache_dir: Path, tmp_path: Path):
    """After building, entries no synth used for `cache_days` are gone; the fresh build stays, and so does
    everything the library did not write."""
    old = _fake_entry(cache_dir, _key("old"), 40)
    theirs = _users_own_folders(cache_dir, tmp_path)
    _synth_api(workspace, tmp_path / "out", cache_days=30)
    assert not old.exists()
    assert {p: p.read_text() for p in theirs} == theirs
    assert len([e for e in _entries(cache_dir) if (e / INFO).is_file() and e.name.startswith("api-")]) == 1
    _remove_dot_folders(cache_dir)


def test_using_an_entry_keeps_it_from_pruning(workspace: Path, cache_dir: Path, tmp_path: Path):
    """A warm synth touches the entry it uses, so age-based pruning keeps it."""
    _synth_api(workspace, tmp_path / "one")
    (entry,) = _entries(cache_dir)
    stamp = time.time() - 40 * 86400
    os.utime(entry / INFO, (stamp, stamp))
    _, built = _synth_api(workspace, tmp_path / "two")
    assert built["cached"] is True
    assert prune(cache_dir, 30) == []
    assert entry.exists()


def test_distinct_packages_build_concurrently(workspace: Path, cache_dir: Path):
    """A cold synth of several packages runs their builds at the same time (build.json start/finish)."""
    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs two cores")

    def populate(stack: Stack) -> None:
        add_function(stack, "Api", "api")
        add_function(stack, "App", "app", handler="main.handler")

    synth_app(workspace, populate)
    spans = [json.loads((e / INFO).read_text()) for e in _entries(cache_dir)]
    (a, b) = sorted((s["started"], s["finished"]) for s in spans)
    assert b[0] < a[1], f"builds ran one after the other: {spans}"


def test_errors_of_several_builds_are_all_reported(workspace: Path, cache_dir: Path):
    """Two failing builds: each its own validation error, with its function, package and target."""
    app = App()
    stack = Stack(app, "Stack")
    add_function(stack, "Api", "api", runtime=lambda_.Runtime.PYTHON_3_10)
    add_function(stack, "App", "app", handler="main.handler", runtime=lambda_.Runtime.PYTHON_3_10)
    from aws_cdk import Aspects

    from cdk_uv_aspect import UvBundlingAspect

    Aspects.of(app).add(UvBundlingAspect(workspace=workspace))
    with pytest.raises(RuntimeError) as error:
        app.synth()
    message = str(error.value)
    blocks = message.split("\n  [")[1:]
    assert len(blocks) == 2, message
    for path, package in (("Stack/Api", "api"), ("Stack/App", "app")):
        block = next(b for b in blocks if b.startswith(f"{path}] cdk-uv-aspect: "))
        assert f"construct: {path}" in block and f"package:   {package}" in block
        assert "python3.10" in block


def test_resynth_into_the_same_cdk_out_copies_nothing(workspace: Path, cache_dir: Path, tmp_path: Path):
    """The CDK skips staging when cdk.out already holds asset.<hash>: the staged files stay untouched."""
    out = tmp_path / "out"
    code, _ = _synth_api(workspace, out)
    staged = out / f"asset.{code['S3Key'].removesuffix('.zip')}"
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in staged.rglob("*")}

    again, built = _synth_api(workspace, out)

    assert built["cached"] is True and again == code
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in staged.rglob("*")} == before


def test_a_killed_builds_work_folder_is_removed_by_the_next_build_of_that_entry(tmp_path: Path):
    """A process killed outright (SIGKILL) can't remove its private work folder: the next build of the
    same entry does, while a folder a live process works in stays."""
    from cdk_uv_aspect._files import work_dir
    from cdk_uv_aspect._prune import sweep

    builds = tmp_path / "builds"
    builds.mkdir()
    holding = (
        "import sys, time; from pathlib import Path; from cdk_uv_aspect._files import work_dir\n"
        "with work_dir(Path(sys.argv[1]), sys.argv[2]) as w:\n"
        "    (w / 'asset').mkdir(); print(w, flush=True); time.sleep(600)\n"
    )
    killed = subprocess.Popen(
        [sys.executable, "-c", holding, str(builds), "api-key"], stdout=subprocess.PIPE, text=True
    )
    live = subprocess.Popen([sys.executable, "-c", holding, str(builds), "api-key"], stdout=subprocess.PIPE, text=True)
    try:
        assert killed.stdout is not None and live.stdout is not None
        abandoned, working = Path(killed.stdout.readline().strip()), Path(live.stdout.readline().strip())
        killed.kill()
        killed.wait()
        assert abandoned.is_dir()  # SIGKILL: nothing could clean up
        old = time.time() - 60
        os.utime(abandoned, (old, old))
        os.utime(working, (old, old))
        with work_dir(builds, "api-key") as mine:
            assert not abandoned.exists()  # no process held it: removed
            assert working.is_dir() and (working / "asset").is_dir()  # its process still works in it
            assert mine.is_dir()
        assert not mine.exists()
        # A synth that only reads the cache sweeps it too, once: named like ours, unheld, old.
        entry = f"api-{'0' * 32}"
        killed = subprocess.Popen(
            [sys.executable, "-c", holding, str(builds), entry], stdout=subprocess.PIPE, text=True
        )
        assert killed.stdout is not None
        abandoned = Path(killed.stdout.readline().strip())
        killed.kill()
        killed.wait()
        os.utime(abandoned, (old, old))
        users = [builds / ".my-notes.abcdefgh", builds / f".{entry}.abcdefgh"]  # the second only looks like ours
        for folder in users:
            folder.mkdir()
            (folder / "readme.md").write_text("mine")
            os.utime(folder, (old, old))
        sweep(builds)
        assert not abandoned.exists() and working.is_dir()
        assert all((folder / "readme.md").is_file() for folder in users)
        for folder in users:
            shutil.rmtree(folder)
    finally:
        live.kill()
        live.wait()
    shutil.rmtree(working, ignore_errors=True)
