"""Lambda facts: every Python runtime and architecture, in one table. Nothing else names an OS or a glibc.

Adding a runtime (say python3.15) is one line in ``RUNTIMES``; the build targets, the image functions'
base images, the policy checks' deprecation warnings and ``cdk-uv invoke`` all read it from here.

Sources: the runtimes' operating systems from the Lambda runtimes page
(https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html); the lifecycle dates as cfn-lint 1.58
records them (``data/AdditionalSpecs/LmbdRuntimeLifecycle.json``), checked November 2026.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Literal

from packaging.tags import Tag

Arch = Literal["x86_64", "arm64"]


@dataclass(frozen=True)
class OperatingSystem:
    """The Amazon Linux a runtime runs on, and the wheels that load there."""

    name: str
    glibc: str
    # The newest manylinux policy whose wheels load on this glibc, as uv's --python-platform names it. uv
    # knows no manylinux_2_26 platform, so Amazon Linux 2 (glibc 2.26) takes manylinux2014 (glibc 2.17).
    wheel_policy: str


AMAZON_LINUX_1 = OperatingSystem("Amazon Linux 1", "2.17", "manylinux2014")
AMAZON_LINUX_2 = OperatingSystem("Amazon Linux 2", "2.26", "manylinux2014")
AMAZON_LINUX_2023 = OperatingSystem("Amazon Linux 2023", "2.34", "manylinux_2_34")

# What a runtime that this table does not list yet can declare it runs on (UvOptions(new_runtimes)), by
# the names the Lambda runtimes page uses for the OS identifier.
DECLARABLE_OS: dict[str, OperatingSystem] = {"al2": AMAZON_LINUX_2, "al2023": AMAZON_LINUX_2023}

_D = datetime.date


@dataclass(frozen=True)
class PythonRuntime:
    """One Lambda Python runtime: its Python version, its OS and its lifecycle."""

    name: str  # "python3.12", as Runtime.name and CloudFormation spell it
    os: OperatingSystem
    deprecated: datetime.date | None  # no more security patches from this day
    create_blocked: datetime.date | None  # creating functions on it is refused from this day
    update_blocked: datetime.date | None  # updating them is refused from this day

    @property
    def python(self) -> str:
        """``"3.12"``."""
        return self.name.removeprefix("python")

    @property
    def base_image(self) -> str:
        """The AWS Lambda base image of this runtime, by tag."""
        return f"{BASE_IMAGE}:{self.python}"

    def retired(self, today: datetime.date) -> bool:
        """Whether functions on it can no longer be updated: nothing built for it could deploy."""
        return self.update_blocked is not None and today >= self.update_blocked


BASE_IMAGE = "public.ecr.aws/lambda/python"

RUNTIMES: dict[str, PythonRuntime] = {
    r.name: r
    for r in (
        PythonRuntime("python2.7", AMAZON_LINUX_1, _D(2021, 7, 15), _D(2021, 7, 15), _D(2022, 5, 30)),
        PythonRuntime("python3.6", AMAZON_LINUX_1, _D(2022, 7, 18), _D(2022, 7, 18), _D(2022, 8, 29)),
        PythonRuntime("python3.7", AMAZON_LINUX_1, _D(2023, 12, 4), _D(2024, 1, 9), _D(2027, 3, 3)),
        PythonRuntime("python3.8", AMAZON_LINUX_2, _D(2024, 10, 14), _D(2027, 2, 1), _D(2027, 3, 3)),
        PythonRuntime("python3.9", AMAZON_LINUX_2, _D(2025, 12, 15), _D(2027, 2, 1), _D(2027, 3, 3)),
        PythonRuntime("python3.10", AMAZON_LINUX_2, _D(2026, 10, 31), _D(2027, 2, 1), _D(2027, 3, 3)),
        PythonRuntime("python3.11", AMAZON_LINUX_2, _D(2027, 6, 30), _D(2027, 7, 31), _D(2027, 8, 31)),
        PythonRuntime("python3.12", AMAZON_LINUX_2023, _D(2028, 10, 31), _D(2028, 11, 30), _D(2029, 1, 10)),
        PythonRuntime("python3.13", AMAZON_LINUX_2023, _D(2029, 6, 30), _D(2029, 7, 31), _D(2029, 8, 31)),
        PythonRuntime("python3.14", AMAZON_LINUX_2023, _D(2029, 6, 30), _D(2029, 7, 31), _D(2029, 8, 31)),
    )
}


# --- the AWS SDK every Python runtime provides --------------------------------------------------------

RUNTIME_PROVIDED = ("boto3", "botocore")
"""What ``UvOptions(omit_runtime_provided=True)`` leaves out of an asset, with the packages only they need
(``uv export --prune``: s3transfer, jmespath, python-dateutil, six, urllib3 unless something else in the
closure needs them). Every Lambda Python runtime has them on its path, below the function's own code."""


@dataclass(frozen=True)
class ShippedSdk:
    """The boto3 and botocore a runtime was seen to ship, and where that was read."""

    boto3: str
    botocore: str
    source: str
    checked: datetime.date


# The newest version each runtime is known to ship: a floor (AWS updates the SDK in its runtimes, and never
# back). AWS stopped publishing it: its Python page now says the version "depends on the runtime version
# and your AWS Region" and shows how to print it from a function. The last table AWS published, in its
# developer guide's repository (awsdocs/aws-lambda-developer-guide, doc_source/lambda-python.md at commit
# a83f69b, 2022-11-14), is the only one with a source; runtimes without an entry have no known version, and
# the uv-runtime-sdk check says so instead of guessing. Add a line when a version is read from a deployed
# function (print(boto3.__version__, botocore.__version__)), with that as its source and date.
_AWS_TABLE = "the AWS Lambda developer guide's table of Python runtimes (awsdocs/aws-lambda-developer-guide a83f69b)"
SHIPPED_SDK: dict[str, ShippedSdk] = {
    name: ShippedSdk("1.20.32", "1.23.32", _AWS_TABLE, _D(2022, 11, 14))
    for name in ("python3.7", "python3.8", "python3.9")
}


@dataclass(frozen=True)
class Architecture:
    """A Lambda architecture, as the ELF files, Docker and uv name it."""

    name: Arch  # Architecture.name in the CDK, and CloudFormation's Architectures
    machine: str  # the ELF machine (uname -m), the GNU triplet's first part
    docker_platform: str
    elf_machine: int  # e_machine in an ELF file's header: the architecture a native file is for


ARCHITECTURES: dict[str, Architecture] = {
    "x86_64": Architecture("x86_64", "x86_64", "linux/amd64", 62),
    "arm64": Architecture("arm64", "aarch64", "linux/arm64", 183),
}


def python_of(runtime: str | None) -> str | None:
    """``"3.12"`` for a Python runtime's name (``python3.12``), known to this table or not; else None."""
    match = re.fullmatch(r"python(\d+\.\d+)", runtime or "")
    return match.group(1) if match else None


# --- which wheels load on a runtime ----------------------------------------------------------------------

# The glibc of the manylinux tags older than PEP 600 (manylinux_X_Y names its glibc itself).
_LEGACY_GLIBC: dict[str, tuple[int, ...]] = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


def tag_loads(tag: Tag, python: str, arch: str, glibc: str) -> bool:
    """Whether a wheel with ``tag`` loads on Lambda's Python ``python`` ("3.12") on ``arch`` with ``glibc``."""
    major, minor = (int(n) for n in python.split("."))
    interpreter, abi, platform = tag.interpreter, tag.abi, tag.platform
    if platform != "any":
        machine = ARCHITECTURES[arch].machine
        if not platform.endswith("_" + machine):
            return False
        kind = platform.removesuffix("_" + machine)
        available = tuple(int(n) for n in glibc.split("."))
        if kind in _LEGACY_GLIBC:
            needed = _LEGACY_GLIBC[kind]
        elif kind.startswith("manylinux_"):
            needed = tuple(int(n) for n in kind.split("_")[1:3])
        else:
            return False  # musllinux, linux (not portable)
        if needed > available:
            return False
    version = interpreter[2:]
    if interpreter.startswith("py"):
        return version in ("", str(major), f"{major}{minor}") or (len(version) > 1 and int(version[1:]) <= minor)
    if not interpreter.startswith("cp"):
        return False
    if abi == "abi3" or abi == "none":
        return version.startswith(str(major)) and int(version[1:] or 0) <= minor
    return version == f"{major}{minor}"


# Python layers ("Packaging your layer content" in the Lambda developer guide): Lambda extracts each layer's
# zip into /opt, in the order the function lists them (a later layer's file replaces an earlier one's), and a
# Python runtime's search path is /var/task, /opt/python/lib/python3.X/site-packages, /opt/python, then the
# runtime's own folders. A layer built here puts its packages in python/ at the zip's root.
TASK_ROOT = "/var/task"  # where Lambda unpacks a zip function's code; LAMBDA_TASK_ROOT in every base image
LAYER_FOLDER = "python"
LAYER_ROOT = "/opt/python"
LAYER_LIMIT = 5  # layers per function


# What platform.machine() says on hosts of each Lambda architecture (macOS says arm64, Linux aarch64).
HOST_MACHINES: dict[str, Arch] = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}


# Lambda@Edge (CloudFront's "Restrictions on Lambda@Edge" and "Quotas on Lambda@Edge", checked December
# 2026): x86_64 only, these Python runtimes, no environment variables and no layers. The zipped function
# may be at most 1 MB for viewer triggers and 50 MB for origin triggers; CloudFront checks which when the
# function is associated with a distribution.
EDGE_RUNTIMES = frozenset({"python3.8", "python3.9", "python3.10", "python3.11", "python3.12", "python3.13"})
EDGE_ARCHITECTURE: Arch = "x86_64"
EDGE_ZIPPED_LIMIT = 50 * 1024 * 1024
EDGE_VIEWER_ZIPPED_LIMIT = 1024 * 1024
