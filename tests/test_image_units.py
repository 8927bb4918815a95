"""An image function's Dockerfile: the image its final stage builds FROM, and which of those are AWS's Lambda
Python images (no build)."""

from __future__ import annotations

import pytest

from cdk_uv_aspect._image import final_base, lambda_python

L = "public.ecr.aws/lambda/python"


DOCKERFILES = {
    "plain": (f"FROM {L}:3.12\nCOPY . /var/task/\n", {}, f"{L}:3.12"),
    "build-arg": ("ARG BASE\nFROM ${BASE}\n", {"BASE": f"{L}:3.12"}, f"{L}:3.12"),
    "arg-default": (f"ARG PYTHON_VERSION=3.11\nFROM {L}:$PYTHON_VERSION\n", {}, f"{L}:3.11"),
    "build-arg-over-default": (
        f"ARG PYTHON_VERSION=3.11\nFROM {L}:${{PYTHON_VERSION}}\n",
        {"PYTHON_VERSION": "3.12"},
        f"{L}:3.12",
    ),
    "default-in-use": (f"ARG V\nFROM {L}:${{V:-3.12}}\n", {}, f"{L}:3.12"),
    "stage-alias": (f"FROM {L}:3.12 AS base\nRUN x\nFROM base\nCOPY . /var/task/\n", {}, f"{L}:3.12"),
    "builder-stage": (
        f"FROM python:3.11 AS build\nRUN pip wheel .\nFROM {L}:3.12\nCOPY --from=build / /\n",
        {},
        f"{L}:3.12",
    ),
    "platform-flag": (f"FROM --platform=$TARGETPLATFORM {L}:3.12-${{TARGETARCH}}\n", {}, f"{L}:3.12-amd64"),
    "comments-and-continuation": (
        f"# syntax=docker/dockerfile:1\n# FROM {L}:3.9\nFROM \\\n  {L}:3.12\n",
        {},
        f"{L}:3.12",
    ),
    "args-after-from-dont-count": (f"ARG V=3.11\nFROM scratch\nARG V=3.9\nFROM {L}:${{V}}\n", {}, f"{L}:3.11"),
    "unset-arg": ("ARG BASE\nFROM $BASE\n", {}, None),
    "no-from": ("COPY . /var/task/\n", {}, None),
}


@pytest.mark.parametrize(("dockerfile", "build_args", "base"), DOCKERFILES.values(), ids=DOCKERFILES)
def test_final_stage_base_image_is_read_as_docker_build_reads_it(dockerfile, build_args, base):
    assert final_base(dockerfile, build_args, "linux/amd64") == base


@pytest.mark.parametrize(
    ("reference", "python"),
    [
        ("public.ecr.aws/lambda/python:3.12", "3.12"),
        ("public.ecr.aws/lambda/python:3.11@sha256:" + "a" * 64, "3.11"),
        ("public.ecr.aws/lambda/python:3.13-arm64", "3.13"),
        ("public.ecr.aws/lambda/python:3.12.2025.01.08.12-x86_64", "3.12"),
        ("amazon/aws-lambda-python:3.10", "3.10"),
        ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/ecr-public/lambda/python:3.9", "3.9"),
        ("public.ecr.aws/lambda/python:latest", None),
        ("public.ecr.aws/lambda/python@sha256:" + "a" * 64, None),
        ("python:3.12", None),
        ("example.org/lambda/python2:3.12", None),
        (None, None),
    ],
)
def test_lambda_python_base_images_are_known_by_repository_and_tag(reference, python):
    """AWS's images (and their copies) say their Python in the tag; anything else is not judged."""
    assert lambda_python(reference) == python
