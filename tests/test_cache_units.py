"""The build cache's folders are private: a cache others can write is refused (no build)."""

from __future__ import annotations

import grp
import os
from pathlib import Path

import pytest

from cdk_uv_aspect._cache import private_dir
from cdk_uv_aspect._errors import ToolError


def test_a_cache_root_others_can_write_is_refused(tmp_path: Path):
    """builds/ is private, but the cache root above it is writable by all: whoever can write there can
    replace builds/ whole. Refused, as docs/reliability.md promises (only builds/ was checked before)."""
    root = tmp_path / "shared"
    (root / "builds").mkdir(parents=True, mode=0o700)
    root.chmod(0o777)
    with pytest.raises(ToolError, match=r"(?s)the build cache .*shared is not private.*chmod go-w"):
        private_dir(root / "builds")


def test_a_folder_of_the_cache_others_can_write_is_refused(tmp_path: Path):
    root = tmp_path / "cache"
    (root / "wheels").mkdir(parents=True, mode=0o700)
    root.chmod(0o700)
    (root / "wheels").chmod(0o757)
    with pytest.raises(ToolError, match="wheels is not private"):
        private_dir(root / "wheels")


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another group needs root")
def test_a_cache_its_group_can_write_is_refused_unless_the_group_is_the_users_own(tmp_path: Path):
    """Group-writable: refused for a group with other users, accepted for the user's own private group
    (umask 002 systems make folders so)."""
    shared_group = next(g for g in grp.getgrall() if g.gr_gid != os.getgid())
    root = tmp_path / "cache"
    root.mkdir(mode=0o700)
    root.chmod(0o770)
    os.chown(root, os.getuid(), shared_group.gr_gid)
    with pytest.raises(ToolError, match="is not private"):
        private_dir(root / "builds")
    os.chown(root, os.getuid(), os.getgid())  # root's own group: no other member here
    assert private_dir(root / "builds").is_dir()


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a folder's owner needs root")
def test_a_cache_root_linked_to_another_users_folder_is_refused(tmp_path: Path):
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 12345, 12345)
    (tmp_path / "cache").symlink_to(theirs)
    with pytest.raises(ToolError, match=r"(?s)cache \(a link to .*theirs\) is not private.*another user"):
        private_dir(tmp_path / "cache" / "builds")


def test_a_cache_under_a_folder_others_can_write_is_accepted(tmp_path: Path):
    """A CI checkout is often writable by all (GitLab's runner uses umask 0000): the cache's own folders
    are made private, and a folder put in their place by someone else would be theirs, and refused."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    checkout.chmod(0o777)
    builds = private_dir(checkout / ".cache" / "cdk-uv" / "builds")
    assert (builds.stat().st_mode & 0o777, builds.parent.stat().st_mode & 0o777) == (0o700, 0o700)
