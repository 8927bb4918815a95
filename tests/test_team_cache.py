"""The team cache (``_remote``, ``_bucket``) against a real S3 API on loopback: moto_server with IAM enforced, a
writer, a reader, a role with no access, and a server that accepts connections and never answers.

The synths of whole apps by several runners are in test_team_cache_runners.py; here one entry at a time.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from emulator import running_moto
from pydantic import ValidationError
from test_pack import make_entry

from cdk_uv_aspect import UvOptions, _bucket, _cache, _remote, _state
from cdk_uv_aspect._bucket import Location, settings
from cdk_uv_aspect._errors import SettingError
from cdk_uv_aspect._remote import BOUND, team_cache

BUCKET = "team-cache"
URL = f"s3://{BUCKET}/cdk-uv"
KEY = "api-python3.12-x86_64-" + "0123456789abcdef" * 2
ALL = "arn:aws:s3:::team-cache"


# --- settings: no server needed ------------------------------------------------------------------------


def test_the_environment_wins_over_the_options(monkeypatch: pytest.MonkeyPatch):
    """CI points at its own bucket and turns writing on or off whatever the app says; `off` turns it off."""
    monkeypatch.delenv(_bucket.ENV_URL, raising=False)
    monkeypatch.delenv(_bucket.ENV_WRITE, raising=False)
    assert settings(None, True) == (None, False)
    assert settings("s3://app-bucket/p/", True) == (Location("app-bucket", "p"), True)
    monkeypatch.setenv(_bucket.ENV_URL, "s3://ci-bucket")
    monkeypatch.setenv(_bucket.ENV_WRITE, "0")
    assert settings("s3://app-bucket/p", True) == (Location("ci-bucket", ""), False)
    monkeypatch.setenv(_bucket.ENV_WRITE, "yes")
    assert settings(None, False) == (Location("ci-bucket", ""), True)
    monkeypatch.setenv(_bucket.ENV_URL, "off")
    assert settings("s3://app-bucket/p", True) == (None, False)


@pytest.mark.parametrize(
    "url",
    ["https://bucket/x", "s3://Bucket", "s3://b", "s3://bucket/../x", "s3://bucket/a//../b", "s3://bucket/a b"],
)
def test_a_url_that_is_not_a_plain_s3_location_is_refused(url: str, monkeypatch: pytest.MonkeyPatch):
    """As an option, when the options are made; from the environment, naming the variable."""
    monkeypatch.delenv(_bucket.ENV_URL, raising=False)
    with pytest.raises(ValidationError, match="remote_cache"):
        UvOptions(remote_cache=url)
    monkeypatch.setenv(_bucket.ENV_URL, url)
    with pytest.raises(SettingError, match=r"(?s)\$CDK_UV_REMOTE_CACHE: .*fix:.*CDK_UV_REMOTE_CACHE=off"):
        settings(None, False)


def test_entry_names_are_only_ever_ours():
    """An object's name is built from a kind and a key of ours; anything else is refused before any call."""
    where = Location(BUCKET, "cdk-uv")
    assert where.object_key("builds", KEY) == f"cdk-uv/v1/builds/{KEY}.tar.gz"
    for kind, key in [("builds", "../x"), ("builds", "a/b"), ("../builds", KEY), ("builds", "")]:
        with pytest.raises(ValueError, match="not an entry name"):
            where.object_key(kind, key)


# --- a real S3 API ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Team:
    """moto_server with IAM enforced, a bucket, and three roles' environments."""

    endpoint: str
    log: Path
    roles: dict[str, dict[str, str]]  # admin, writer, reader, nobody -> AWS_* variables
    folder: Path

    def client(self, role: str = "admin"):  # type: ignore[no-untyped-def]
        import boto3

        env = self.roles[role]
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )

    def objects(self) -> dict[str, bytes]:
        s3 = self.client()
        listed = s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
        return {o["Key"]: s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listed}

    def requests(self) -> list[str]:
        """The HTTP requests moto_server logged so far, e.g. ``GET /team-cache/cdk-uv/v1/... HTTP/1.1" 200``."""
        return [line.split('"', 1)[1] for line in self.log.read_text().splitlines() if '"' in line and " /" in line]


def role_env(endpoint: str, key: dict[str, str], folder: Path) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(folder / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(folder / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def start_team(folder: Path) -> contextlib.AbstractContextManager[Team]:
    """moto_server enforcing IAM after the three calls that make its admin; the bucket; the roles."""
    server = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
    assert server, "the team cache tests need moto_server: install the test extras"

    @contextlib.contextmanager
    def started() -> Iterator[Team]:
        command = ["env", "INITIAL_NO_AUTH_ACTION_COUNT=3", server]
        with running_moto(command, folder) as moto:
            import boto3

            plain = {"endpoint_url": moto.endpoint, "region_name": "us-east-1"}
            iam = boto3.client("iam", aws_access_key_id="x", aws_secret_access_key="x", **plain)
            iam.create_user(UserName="admin")
            admin = iam.create_access_key(UserName="admin")["AccessKey"]
            iam.put_user_policy(
                UserName="admin",
                PolicyName="all",
                PolicyDocument=policy(["*"], ["*"]),
            )
            iam = boto3.client(
                "iam", aws_access_key_id=admin["AccessKeyId"], aws_secret_access_key=admin["SecretAccessKey"], **plain
            )
            keys = {"admin": admin}
            # What docs/remote-cache.md's bucket policy allows CI and the developers (as these users' own
            # policies: moto enforces those), and nobody else.
            documented = documented_policy()
            actions = {"writer": documented["cdk-uv-ci"], "reader": documented["developers"], "nobody": []}
            for role, allowed in actions.items():
                iam.create_user(UserName=role)
                keys[role] = iam.create_access_key(UserName=role)["AccessKey"]
                if allowed:
                    iam.put_user_policy(
                        UserName=role, PolicyName="cache", PolicyDocument=policy(allowed, [ALL, ALL + "/*"])
                    )
            roles = {role: role_env(moto.endpoint, key, folder) for role, key in keys.items()}
            team = Team(moto.endpoint, folder / "moto.log", roles, folder)
            team.client().create_bucket(Bucket=BUCKET)
            yield team

    return started()


def documented_policy() -> dict[str, list[str]]:
    """Role name -> the S3 actions the bucket policy of docs/remote-cache.md allows it (its JSON block)."""
    text = (Path(__file__).parent.parent / "docs" / "remote-cache.md").read_text()
    block = text[text.index("```json\n") + len("```json\n") :]
    allowed: dict[str, list[str]] = {}
    for statement in json.loads(block[: block.index("```")])["Statement"]:
        if statement["Effect"] != "Allow":
            continue
        principals = statement["Principal"]["AWS"]
        for arn in [principals] if isinstance(principals, str) else principals:
            for action in [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]:
                allowed.setdefault(arn.rsplit("/", 1)[-1], []).append(action)
    return {role: sorted(set(actions)) for role, actions in allowed.items()}


def test_the_documented_bucket_policy_lets_ci_write_and_developers_read_only():
    """docs/remote-cache.md's policy (whose actions the team fixture gives its writer and reader): CI may
    read, list and write; developers read and list, never write; a Deny keeps writes to CI alone."""
    documented = documented_policy()
    assert documented == {
        "cdk-uv-ci": ["s3:GetObject", "s3:ListBucket", "s3:PutObject"],
        "developers": ["s3:GetObject", "s3:ListBucket"],
    }
    text = (Path(__file__).parent.parent / "docs" / "remote-cache.md").read_text()
    block = text[text.index("```json\n") + len("```json\n") :]
    (deny,) = [st for st in json.loads(block[: block.index("```")])["Statement"] if st["Effect"] == "Deny"]
    assert deny["Principal"] == "*" and "s3:PutObject" in deny["Action"]
    assert deny["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": "arn:aws:iam::111111111111:role/cdk-uv-ci"}}


def policy(actions: list[str], resources: list[str]) -> str:
    return json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": resources}]}
    )


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    with start_team(tmp_path_factory.mktemp("team-moto")) as running:
        yield running


@pytest.fixture
def clean(team: Team) -> Team:
    """The bucket emptied before the test."""
    s3 = team.client()
    for key in team.objects():
        s3.delete_object(Bucket=BUCKET, Key=key)
    return team


def act_as(monkeypatch: pytest.MonkeyPatch, team: Team, role: str) -> None:
    """This process's AWS SDK configuration becomes the role's (a new process, as far as the cache knows)."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    for name, value in team.roles[role].items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv(_bucket.ENV_URL, raising=False)
    monkeypatch.delenv(_bucket.ENV_WRITE, raising=False)
    _state.reset()


class Said(list[str]):
    """The warnings a team cache printed."""

    def __call__(self, line: str) -> None:
        self.append(line)


def written_entry(tmp_path: Path) -> tuple[Path, dict]:
    """A finished entry in a writer's local cache, at ``builds/<KEY>``."""
    return make_entry(tmp_path / "writer-cache" / "builds" / KEY)


slow = pytest.mark.slow


@slow
def test_an_entry_a_writer_stored_is_fetched_whole_by_a_reader(clean: Team, tmp_path: Path, monkeypatch):
    """One object per entry; the reader's copy is the entry, published into its own cache, used from then on."""
    entry, _ = written_entry(tmp_path)
    act_as(monkeypatch, clean, "writer")
    said = Said()
    writer = team_cache(URL, True)
    assert writer is not None
    writer.store("builds", entry, said)
    assert list(clean.objects()) == [f"cdk-uv/v1/builds/{KEY}.tar.gz"]
    assert writer.stats.uploads == 1 and writer.stats.bytes_up == len(clean.objects()[f"cdk-uv/v1/builds/{KEY}.tar.gz"])

    act_as(monkeypatch, clean, "reader")
    reader = team_cache(URL, False)
    assert reader is not None
    builds = tmp_path / "reader-cache" / "builds"
    builds.mkdir(parents=True)
    info = reader.fetch("builds", KEY, builds, said)
    assert info is not None and info["package"] == "api"
    got = builds / KEY
    for path in (entry / "asset").rglob("*"):
        copy = got / "asset" / path.relative_to(entry / "asset")
        assert copy.is_dir() if path.is_dir() else copy.read_bytes() == path.read_bytes()
    assert (got / "sbom.cdx.json").read_bytes() == (entry / "sbom.cdx.json").read_bytes()
    assert said == []
    assert (reader.stats.hits, reader.stats.misses, reader.stats.bytes_down) == (1, 0, writer.stats.bytes_up)


@slow
def test_a_missing_entry_is_a_plain_miss(clean: Team, tmp_path: Path, monkeypatch):
    act_as(monkeypatch, clean, "reader")
    reader = team_cache(URL, False)
    assert reader is not None
    said = Said()
    assert reader.fetch("builds", KEY, tmp_path, said) is None
    assert reader.fetch("wheels", KEY, tmp_path, said) is None
    assert said == [] and reader.readable
    assert (reader.stats.hits, reader.stats.misses) == (0, 2)


@slow
def test_a_reader_never_writes(clean: Team, tmp_path: Path, monkeypatch):
    """Without the write switch nothing is sent, even with a role that may write; with it, a role that
    may not is refused once, says so, and still reads."""
    entry, _ = written_entry(tmp_path)
    act_as(monkeypatch, clean, "writer")
    before = len(clean.requests())
    reader = team_cache(URL, False)
    assert reader is not None
    reader.store("builds", entry)
    assert clean.requests()[before:] == [] and clean.objects() == {}

    act_as(monkeypatch, clean, "reader")
    said = Said()
    denied = team_cache(URL, True)
    assert denied is not None
    denied.store("builds", entry, said)
    denied.store("builds", entry, said)
    assert clean.objects() == {}
    assert len(said) == 1 and "can't be written to (access denied: AccessDenied, HTTP 403)" in said[0], said
    assert "s3:PutObject" in said[0]
    assert denied.fetch("builds", KEY, tmp_path, said) is None and denied.stats.misses == 1  # reads go on
    assert len(said) == 1


def tampered(packed: bytes, path: str) -> bytes:
    """The same object with one byte of one file changed; its build.json (manifest) kept as it was."""
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(packed), mode="r:gz") as source,
        gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        for member in source.getmembers():
            data = source.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            if member.name == path:
                assert data
                data = data[:-2] + bytes([data[-2] ^ 1]) + data[-1:]
            archive.addfile(member, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


@slow
def test_a_tampered_object_is_refused_with_a_warning_naming_its_key(clean: Team, tmp_path: Path, monkeypatch):
    """One byte of a file changed, the manifest kept: refused, nothing published, the key named."""
    entry, _ = written_entry(tmp_path)
    act_as(monkeypatch, clean, "writer")
    writer = team_cache(URL, True)
    assert writer is not None
    writer.store("builds", entry)
    name = f"cdk-uv/v1/builds/{KEY}.tar.gz"
    clean.client().put_object(Bucket=BUCKET, Key=name, Body=tampered(clean.objects()[name], "asset/api/handler.py"))

    act_as(monkeypatch, clean, "reader")
    reader = team_cache(URL, False)
    assert reader is not None
    builds = tmp_path / "reader-cache" / "builds"
    builds.mkdir(parents=True)
    said = Said()
    assert reader.fetch("builds", KEY, builds, said) is None
    assert os.listdir(builds) == []
    assert len(said) == 1 and KEY in said[0] and "asset/api/handler.py does not match its manifest" in said[0]
    assert reader.stats.refused == 1 and reader.readable  # one bad entry: the others are still worth reading


@contextlib.contextmanager
def silent_server() -> Iterator[tuple[str, list[socket.socket]]]:
    """A server on loopback that accepts every connection and never answers: a bucket that hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.1)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                accepted.append(listener.accept()[0])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepted
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()


def fetch_at_once(count: int, tmp_path: Path, said: Said) -> float:
    """``count`` lookups started together, as the builds of a synth start; the seconds until all returned."""
    cache = team_cache(URL, True)
    assert cache is not None
    results: list[object] = []
    started = time.monotonic()
    threads = [
        threading.Thread(target=lambda i=i: results.append(cache.fetch("builds", f"p{i}-{'0' * 32}", tmp_path, said)))
        for i in range(count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [None] * count
    return time.monotonic() - started


@slow
def test_a_bucket_that_hangs_costs_at_most_the_bound_in_all(tmp_path: Path, monkeypatch, team: Team):
    """Six lookups at once wait side by side, one warning, then no call is made again: later lookups
    and uploads cost nothing."""
    act_as(monkeypatch, team, "reader")
    with silent_server() as (endpoint, accepted):
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        said = Said()
        waited = fetch_at_once(6, tmp_path, said)
        assert waited < BOUND + 3, waited  # the bound, and the threads' start under load
        assert len(said) == 1 and "no answer" in said[0] and URL in said[0], said
        connections = len(accepted)
        assert connections >= 1
        started = time.monotonic()
        cache = team_cache(URL, True)
        assert cache is not None
        entry, _ = written_entry(tmp_path)
        cache.store("builds", entry, said)
        assert cache.fetch("builds", KEY, tmp_path, said) is None
        assert time.monotonic() - started < 1
        time.sleep(0.3)
        assert len(accepted) == connections and len(said) == 1


@slow
def test_a_bucket_that_refuses_access_costs_one_call_and_one_warning(clean: Team, tmp_path: Path, monkeypatch):
    """A role with no access: a denial, one warning with the permissions to grant, then nothing is asked."""
    act_as(monkeypatch, clean, "nobody")
    said = Said()
    before = len(clean.requests())
    assert fetch_at_once(4, tmp_path, said) < BOUND
    assert len(said) == 1, said
    assert "can't be used (access denied: AccessDenied, HTTP 403)" in said[0]
    assert "s3:GetObject" in said[0] and "s3:ListBucket" in said[0]
    asked = len(clean.requests()) - before
    assert 1 <= asked <= 4  # those already on their way when the first answer came
    cache = team_cache(URL, True)
    assert cache is not None
    assert cache.fetch("builds", KEY, tmp_path, said) is None
    assert len(clean.requests()) - before == asked


@slow
def test_no_bucket_there_is_a_quick_warning(tmp_path: Path, monkeypatch, team: Team):
    """A port where nothing listens: refused at once, one warning."""
    act_as(monkeypatch, team, "reader")
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    said = Said()
    assert fetch_at_once(3, tmp_path, said) < BOUND
    assert len(said) == 1 and "unreachable" in said[0], said


class Link:
    """A network link to the server on ``port``: each request held ``latency`` seconds, answers sent at
    ``rate`` bytes per second (if given); counts the requests waiting for their answer at once (a
    connection's close is seen late, so connections are not what is counted)."""

    def __init__(self, port: int, *, latency: float = 0.0, rate: int | None = None) -> None:
        self.upstream, self.latency, self.rate = port, latency, rate
        self.waiting = self.most_waiting = 0
        self._lock = threading.Lock()
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.1)
        self._stop = threading.Event()
        self.endpoint = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client = self._listener.accept()[0]
            except (TimeoutError, OSError):
                continue
            server = socket.create_connection(("127.0.0.1", self.upstream))
            asked = threading.Event()  # a request of this connection waits for its answer
            threading.Thread(target=self._pump, args=(client, server, asked, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, asked, False), daemon=True).start()

    def _pump(self, source: socket.socket, dest: socket.socket, asked: threading.Event, request: bool) -> None:
        try:
            while data := source.recv(65536):
                with self._lock:
                    if request and not asked.is_set():
                        asked.set()
                        self.waiting += 1
                        self.most_waiting = max(self.most_waiting, self.waiting)
                    elif not request and asked.is_set():
                        asked.clear()
                        self.waiting -= 1
                if request:
                    time.sleep(self.latency)
                    dest.sendall(data)
                    continue
                step = max(1, (self.rate or len(data)) // 20)
                for at in range(0, len(data), step):
                    dest.sendall(data[at : at + step])
                    if self.rate:
                        time.sleep(step / self.rate)
        except OSError:
            pass
        finally:
            with self._lock:
                if asked.is_set():
                    asked.clear()
                    self.waiting -= 1
            for end in (source, dest):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)


@slow
def test_lookups_run_side_by_side_up_to_the_connection_limit(clean: Team, tmp_path: Path, monkeypatch):
    """Twenty lookups at once over a link with latency: eight at a time (CONNECTIONS), not one, not twenty."""
    act_as(monkeypatch, clean, "reader")
    link = Link(int(clean.endpoint.rsplit(":", 1)[1]), latency=0.4)
    monkeypatch.setenv("AWS_ENDPOINT_URL", link.endpoint)
    try:
        said = Said()
        fetch_at_once(20, tmp_path, said)
    finally:
        link.close()
    assert said == []
    assert link.most_waiting == _remote.CONNECTIONS


@slow
def test_a_download_slower_than_the_floor_is_given_up(clean: Team, tmp_path: Path, monkeypatch):
    """An entry coming at 100 kB/s: given up once it falls behind 1 MB/s after the grace, one warning."""
    entry, info = written_entry(tmp_path)
    (entry / "asset" / "api" / "data.bin").write_bytes(os.urandom(600_000))  # incompressible
    info["manifest"] = _cache.manifest(entry / "asset")
    _cache.write_info(entry, info)
    act_as(monkeypatch, clean, "writer")
    writer = team_cache(URL, True)
    assert writer is not None
    writer.store("builds", entry)
    act_as(monkeypatch, clean, "reader")
    link = Link(int(clean.endpoint.rsplit(":", 1)[1]), rate=100_000)
    monkeypatch.setenv("AWS_ENDPOINT_URL", link.endpoint)
    said = Said()
    builds = tmp_path / "reader-cache" / "builds"
    builds.mkdir(parents=True)
    started = time.monotonic()
    try:
        reader = team_cache(URL, False)
        assert reader is not None
        assert reader.fetch("builds", KEY, builds, said) is None
    finally:
        link.close()
    assert time.monotonic() - started < _bucket.GRACE + 3  # not the 6 s the whole download would take
    assert len(said) == 1 and "a download ran below 1 MB/s" in said[0], said
    assert os.listdir(builds) == []


@slow
def test_credentials_never_appear_in_messages_or_the_cache(clean: Team, tmp_path: Path, monkeypatch):
    """What the warnings say and what the cache keeps name the bucket and the keys, never a credential:
    a denied role, an unknown access key, a tampered object, a hit."""
    entry, _ = written_entry(tmp_path)
    act_as(monkeypatch, clean, "writer")
    writer = team_cache(URL, True)
    assert writer is not None
    writer.store("builds", entry)
    name = f"cdk-uv/v1/builds/{KEY}.tar.gz"
    said = Said()
    cache_dir = tmp_path / "reader-cache"
    (cache_dir / "builds").mkdir(parents=True)
    secrets = []
    for role in ("nobody", "unknown", "reader"):
        act_as(monkeypatch, clean, role if role != "unknown" else "reader")
        if role == "unknown":
            monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNKEY000001")
            monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-secret-anyone-has-0000000000000000")
        secrets += [os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]]
        cache = team_cache(URL, True)
        assert cache is not None
        cache.fetch("builds", KEY, cache_dir / "builds", said)
        cache.store("builds", entry, said)
        cache.record(cache_dir)
    clean.client().put_object(Bucket=BUCKET, Key=name, Body=tampered(clean.objects()[name], "asset/api/handler.py"))
    shutil.rmtree(cache_dir / "builds" / KEY)
    act_as(monkeypatch, clean, "reader")
    cache = team_cache(URL, False)
    assert cache is not None
    cache.fetch("builds", KEY, cache_dir / "builds", said)
    assert len(said) >= 4  # denied, unknown key (twice: reading, writing), tampered
    kept = [p.read_bytes() for p in cache_dir.rglob("*") if p.is_file()]
    for secret in secrets:
        assert not any(secret in line for line in said), secret
        assert not any(secret.encode() in content for content in kept), secret


@pytest.mark.seconds
def test_boto3_is_imported_only_when_an_entry_is_looked_up(tmp_path: Path):
    """Configuring a team cache, making options and the process's cache object import nothing of the SDK."""
    script = (
        "import sys\n"
        "from cdk_uv_aspect import UvBundlingAspect, UvOptions\n"
        "from cdk_uv_aspect._remote import team_cache\n"
        f"UvBundlingAspect(remote_cache={URL!r}, remote_cache_write=True)\n"
        f"assert team_cache({URL!r}, True) is not None\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
