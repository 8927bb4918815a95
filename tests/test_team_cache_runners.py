"""The team cache between CI runners and laptops: the sample app (samples/app.py) synthesized by the real
CDK CLI, each runner a checkout of its own (folder, HOME, TMPDIR, umask, empty build cache), against
moto_server with IAM enforced on loopback (see test_team_cache.py for the roles).

Runner A writes (CI); runner B reads, with another checkout path, HOME and umask; the others read a
bucket that was tampered with, that hangs, that refuses them, or that holds a planted entry.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_pipeline import Runner, Synth, files_of
from test_team_cache import BUCKET, URL, Team, silent_server, start_team, tampered

from cdk_uv_aspect import _cache, _pack
from cdk_uv_aspect._bucket import ATTEMPTS

pytestmark = pytest.mark.slow

APP = "samples"
CDK_UV = str(Path(sys.executable).with_name("cdk-uv"))
BUILDS = {  # (package, target): the sample's four builds
    ("orders", "python3.12-x86_64"),
    ("orders", "python3.12-arm64"),
    ("users", "python3.11-x86_64"),
    ("report", "python3.13-arm64"),
}
WARNING = re.compile(r"cdk-uv-aspect: warning: the team cache (\S+) can't be (?:used|written to) \(([^)]*)")


def team_runner(root: Path, checkout: str, team: Team, role: str, *, write: bool, umask: int = 0o022) -> Runner:
    env = {**team.roles[role], "CDK_UV_REMOTE_CACHE": URL, "CDK_UV_REMOTE_CACHE_WRITE": "1" if write else "0"}
    return Runner(root, checkout, umask=umask, env=env)


def cdk_uv(runner: Runner, *args: str) -> subprocess.CompletedProcess[str]:
    """The cdk-uv command in the runner's checkout of the sample, with its environment."""
    return subprocess.run(
        [CDK_UV, *args], cwd=runner.repo / APP, env=runner.env(), capture_output=True, text=True, check=False
    )


def how(synth: Synth) -> dict[tuple[str, str], str]:
    """(package, target) -> "built", "from cache" or "from the team cache", from the progress lines."""
    found: dict[tuple[str, str], str] = {}
    for package, target, _, how in synth.builds:
        found.setdefault((package, target), how)
    return found


def templates(synth: Synth) -> dict[str, bytes]:
    return {
        p.relative_to(synth.out).as_posix(): p.read_bytes()
        for p in synth.out.glob("*.json")
        if "template" in p.name or "assets" in p.name
    }


def assets(synth: Synth) -> dict[str, dict]:
    """Asset hash -> its staged folder's files (mode and content)."""
    return {p.name: files_of(p) for p in synth.out.glob("asset.*") if p.is_dir()}


def records(runner: Runner) -> list[dict]:
    done = cdk_uv(runner, "report", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def object_of(team: Team, key: str) -> str:
    return f"cdk-uv/v1/builds/{key}.tar.gz"


@dataclass(frozen=True)
class Run:
    runner: Runner
    synth: Synth
    requests: list[str]  # what the runner asked moto_server for


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    with start_team(tmp_path_factory.mktemp("team-moto")) as running:
        yield running


def synth(team: Team, runner: Runner) -> Run:
    before = len(team.requests())
    done = runner.synth(APP)
    return Run(runner, done, [r for r in team.requests()[before:] if f" /{BUCKET}" in r])


@pytest.fixture(scope="module")
def writer_a(tmp_path_factory: pytest.TempPathFactory, team: Team) -> Run:
    """Runner A, CI: writes, empty build cache; the bucket empty before."""
    runner = team_runner(tmp_path_factory.mktemp("runner-a"), "src", team, "writer", write=True)
    return synth(team, runner)


@pytest.fixture(scope="module")
def reader_b(tmp_path_factory: pytest.TempPathFactory, team: Team, writer_a: Run) -> Run:
    """Runner B, a laptop: reads only, empty build cache, another checkout path, HOME and umask."""
    root = tmp_path_factory.mktemp("runner-b")
    runner = team_runner(root, "work/agent-7/service", team, "reader", write=False, umask=0o077)
    return synth(team, runner)


def test_a_writer_fills_the_bucket_with_one_object_per_build(writer_a: Run, team: Team):
    assert how(writer_a.synth) == {build: "built" for build in BUILDS}
    keys = {r["key"] for r in records(writer_a.runner)}
    assert len(keys) == 4
    objects = team.objects()
    assert {object_of(team, key) for key in keys} <= set(objects)
    assert any("/v1/wheels/common-" in name for name in objects)  # the local wheel that every build shares
    assert any("/v1/store/pydantic-" in name for name in objects)  # a third-party distribution, per target
    # Every entry the writer made is shared: builds, local wheels (also those built in one batch for
    # several builds), distributions.
    cache = writer_a.runner.build_cache
    made = {
        f"cdk-uv/v1/{kind}/{e.name}.tar.gz" for kind in ("builds", "wheels", "store") for e in cache.glob(f"{kind}/*")
    }
    assert len(made) > 10 and made <= set(objects), made - set(objects)
    assert WARNING.search(writer_a.synth.stderr) is None


def test_a_reader_builds_nothing_and_gets_identical_templates_and_assets(writer_a: Run, reader_b: Run, team: Team):
    """Another checkout path, HOME, umask and an empty build cache: every build from the team cache, the
    same templates and asset manifests byte for byte, the same asset folders, file by file with modes."""
    assert how(reader_b.synth) == {build: "from the team cache" for build in BUILDS}
    assert not (reader_b.runner.build_cache / "wheels").exists()  # not even a local wheel was built
    a, b = writer_a.synth, reader_b.synth
    assert templates(b) == templates(a) and len(templates(a)) >= 2
    assert assets(b) == assets(a) and len(assets(a)) >= 4
    assert [r["assetHash"] for r in records(reader_b.runner)] == [r["assetHash"] for r in records(writer_a.runner)]
    assert not any(request.startswith("PUT") for request in reader_b.requests), reader_b.requests
    assert WARNING.search(b.stderr) is None


def test_the_report_and_cache_info_say_where_builds_came_from(writer_a: Run, reader_b: Run):
    """`cdk-uv report` has a "from" column; `cdk-uv cache info` the team cache's hits, misses, bytes, time."""
    assert {r["origin"] for r in records(writer_a.runner)} == {"built"}
    assert {r["origin"] for r in records(reader_b.runner)} == {"team cache"}
    table = cdk_uv(reader_b.runner, "report").stdout
    assert "from" in table.splitlines()[0] and table.count("team cache") == 5  # five functions, four builds

    info = cdk_uv(reader_b.runner, "cache", "info").stdout
    assert f"team cache: {URL} (read only)" in info
    last = re.search(r"last synth \((\S+)\): (\d+) hit\(s\), (\d+) miss\(es\), (\d+) refused, (\d+) upload", info)
    assert last and last.groups() == (URL, "4", "0", "0", "0"), info
    assert re.search(r"\d+ kB down|\d+\.\d MB down", info) and " s in calls" in info
    written = cdk_uv(writer_a.runner, "cache", "info").stdout
    assert "(read and write)" in written and re.search(r"0 hit\(s\), \d+ miss\(es\), 0 refused, \d+ upload", written)


def test_a_tampered_object_is_refused_and_rebuilt(tmp_path: Path, writer_a: Run, team: Team):
    """One byte of a file changed, the manifest kept: a warning naming the key, that build made here, the
    others from the team cache, and the same templates as the writer's."""
    (record,) = [r for r in records(writer_a.runner) if r["function"] == "UvSample/Users"]
    key = record["key"]
    name = object_of(team, key)
    original = team.objects()[name]
    s3 = team.client()
    s3.put_object(Bucket=BUCKET, Key=name, Body=tampered(original, "asset/users/handler.py"))
    try:
        runner = team_runner(tmp_path, "checkout", team, "reader", write=False)
        run = synth(team, runner)
    finally:
        s3.put_object(Bucket=BUCKET, Key=name, Body=original)
    assert how(run.synth) == {
        build: "built" if build == ("users", "python3.11-x86_64") else "from the team cache" for build in BUILDS
    }
    (warning,) = [line for line in run.synth.stderr.splitlines() if "is refused" in line]
    assert key in warning and "asset/users/handler.py does not match its manifest" in warning
    assert templates(run.synth) == templates(writer_a.synth)
    assert assets(run.synth) == assets(writer_a.synth)
    # Rebuilt from the team cache's parts: its distributions (store) and local wheels, nothing installed.
    stats = json.loads((runner.build_cache / "team-cache.json").read_text())["last"]
    assert (stats["refused"], stats["misses"]) == (1, 0) and stats["hits"] > 3, stats
    assert any(runner.build_cache.glob("store/pydantic-*"))


@pytest.mark.parametrize("trouble", ["hangs", "refuses access"])
def test_a_bucket_in_trouble_costs_the_bound_then_builds_here_with_one_warning(
    tmp_path: Path, writer_a: Run, team: Team, trouble: str
):
    """A bucket that never answers, or a role it refuses: one warning saying why, every build made here, the
    same templates; the bucket is asked only by the builds already started when the first answer came."""
    role = "nobody" if trouble == "refuses access" else "reader"
    runner = team_runner(tmp_path, "checkout", team, role, write=True)
    with silent_server() as (endpoint, accepted):
        if trouble == "hangs":
            runner.extra_env["AWS_ENDPOINT_URL_S3"] = endpoint  # S3 only: the CLI's own calls are answered
        run = synth(team, runner)
        asked = len(accepted) if trouble == "hangs" else len(run.requests)
    assert how(run.synth) == {build: "built" for build in BUILDS}
    warnings = WARNING.findall(run.synth.stderr)
    assert len(warnings) == 1, run.synth.stderr
    assert warnings[0][1].startswith("no answer" if trouble == "hangs" else "access denied: AccessDenied")
    # Only the lookups started together (one per build) were sent, each with its SDK retry; none after.
    assert 1 <= asked <= len(BUILDS) * ATTEMPTS, asked
    assert templates(run.synth) == templates(writer_a.synth)
    stats = json.loads((runner.build_cache / "team-cache.json").read_text())["last"]
    assert stats["hits"] == 0 and stats["uploads"] == 0 and stats["failed"]


def test_cdk_ls_never_touches_the_team_cache(tmp_path: Path, team: Team):
    """Commands that build nothing make no call: a bucket that would hang is never even connected to."""
    runner = team_runner(tmp_path, "checkout", team, "reader", write=True)
    with silent_server() as (endpoint, accepted):
        runner.extra_env["AWS_ENDPOINT_URL_S3"] = endpoint
        stderr = runner.cdk("ls", app=APP)
        assert accepted == []
    assert WARNING.search(stderr) is None and "team cache" not in stderr


def plant(original: bytes, path: str, edit: bytes, folder: Path) -> bytes:
    """An entry that is not a build of these sources, yet consistent with its own manifest (as a writer
    whose build is not reproducible, or a hostile one, would upload): ``path`` edited, manifest updated."""
    with tarfile.open(fileobj=io.BytesIO(original), mode="r:gz") as archive:
        archive.extractall(folder, filter="data")
    (folder / path).write_bytes((folder / path).read_bytes() + edit)
    info = json.loads((folder / "build.json").read_text())
    info["manifest"] = _cache.manifest(folder / "asset")
    out = io.BytesIO()
    _pack.pack(folder, info, out)
    return out.getvalue()


def test_verify_passes_on_an_honest_cache_and_names_a_planted_entry(
    tmp_path: Path, writer_a: Run, reader_b: Run, team: Team
):
    """`cdk-uv verify` builds again what the team cache served runner B: the same bytes. A planted entry,
    consistent with its manifest so the synth uses it, is named with the file that differs."""
    honest = cdk_uv(reader_b.runner, "verify")
    assert honest.returncode == 0, honest.stdout + honest.stderr
    assert honest.stdout.count("same") == 4 and "4 build(s) verified" in honest.stderr

    (record,) = [r for r in records(writer_a.runner) if r["function"] == "UvSample/Users"]
    key = record["key"]
    name = object_of(team, key)
    original = team.objects()[name]
    s3 = team.client()
    planted = plant(original, "asset/users/handler.py", b"\nLEAK = 1\n", tmp_path / "planted")
    s3.put_object(Bucket=BUCKET, Key=name, Body=planted)
    try:
        runner = team_runner(tmp_path, "checkout", team, "reader", write=False)
        run = synth(team, runner)
        assert how(run.synth)[("users", "python3.11-x86_64")] == "from the team cache"  # it passed its manifest
        verified = cdk_uv(runner, "verify")
    finally:
        s3.put_object(Bucket=BUCKET, Key=name, Body=original)
    assert verified.returncode == 1, verified.stdout + verified.stderr
    (line,) = [line for line in verified.stdout.splitlines() if line.startswith("DIFFERS")]
    assert key in line and "users (python3.11-x86_64)" in line and "UvSample/Users" in line
    assert "asset/users/handler.py: other content" in verified.stdout
    assert verified.stdout.count("same") == 3 and key in verified.stderr


def test_credentials_never_reach_the_assembly_the_caches_or_the_output(writer_a: Run, reader_b: Run, team: Team):
    """Neither role's access key id nor its secret is in cdk.out (templates, records, SBOMs), the build
    cache, the team cache's objects or what the synth printed."""
    secrets = [
        team.roles[role][name]
        for role in ("writer", "reader")
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    ]
    contents = [run.synth.stderr.encode() for run in (writer_a, reader_b)]
    for run in (writer_a, reader_b):
        for folder in (run.synth.out, run.runner.build_cache):
            contents += [p.read_bytes() for p in folder.rglob("*") if p.is_file() and not p.is_symlink()]
    contents += [gzip.decompress(packed) for packed in team.objects().values()]
    assert len(contents) > 100
    for secret in secrets:
        assert not any(secret.encode() in content for content in contents), secret
