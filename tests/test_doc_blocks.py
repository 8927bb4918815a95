"""Every shell block of README.md and docs/adopting.md has a test that runs it as written: a block added
under a new heading fails here until a test runs it."""

from __future__ import annotations

from helpers import REPO
from shell_docs import shell_blocks

RUN_BY = {
    ("README.md", "Install"): "tests/shell_docs.py (the `installed` fixture every doc test starts from)",
    ("README.md", "Quick start"): "tests/test_quickstart.py",
    ("docs/adopting.md", "Steps"): "tests/test_adopting_steps.py",
}
# The contributors' two commands: CI runs `./dev test` itself (.ci/run), which runs this test.
CONTRIBUTORS = ("README.md", "Developing cdk-uv-aspect: the two commands")


def test_every_shell_block_of_the_user_docs_has_a_test_that_runs_it():
    found = {(doc, heading) for doc in ("README.md", "docs/adopting.md") for heading in shell_blocks(doc)}
    assert found == {*RUN_BY, CONTRIBUTORS}, "a shell block no test runs: add it to a doc test and to RUN_BY"
    for runner in RUN_BY.values():
        assert (REPO / runner.split()[0]).is_file(), runner


def test_ci_runs_the_contributors_test_command():
    (block,) = shell_blocks(CONTRIBUTORS[0])[CONTRIBUTORS[1]]
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert commands == ["./dev demo", "./dev test"]
    assert (REPO / ".ci" / "run").read_text().rstrip().endswith("exec ./dev test")
