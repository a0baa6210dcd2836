"""Container images: pinned by digest, or listed with a reason in deploy/unpinned-images.txt."""

import re

import pytest
import yaml

from tests.deploy.conftest import DEPLOY

ALLOWLIST = DEPLOY / "unpinned-images.txt"
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
FROM = re.compile(r"^FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", re.MULTILINE | re.I)


ARG = re.compile(r"^ARG\s+(\w+)=(\S+)", re.MULTILINE)


def containerfile_images() -> dict[str, str]:
    """Return every base image of deploy/container, each with the file naming it.

    A base given as a build argument (`FROM ${BASE}`) counts as the argument's default: that is
    what a build without --build-arg pulls.
    """
    images = {}
    for path in sorted((DEPLOY / "container").glob("Containerfile*")):
        text = path.read_text()
        for name, default in ARG.findall(text):
            text = text.replace(f"${{{name}}}", default)
        stages = {"scratch"}
        for image, stage in FROM.findall(text):
            if image not in stages:  # `FROM build` reuses an earlier stage: not an image
                images[image] = path.name
            stages.add(stage)
    return images


def compose_images() -> dict[str, str]:
    """Return every image compose pulls, each with its service; built images are not pulled."""
    services = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    return {s["image"]: name for name, s in services.items() if "build" not in s}


def allowlist() -> dict[str, str]:
    """Return the allowlist: image -> why it is not pinned."""
    entries = {}
    for line in ALLOWLIST.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            image, _, why = line.partition(" ")
            entries[image] = why.strip()
    return entries


def test_both_sources_are_read():
    assert set(containerfile_images()) >= {"docker.io/library/python:3.11-slim"}
    assert set(compose_images()) >= {"docker.io/library/postgres:16"}
    assert not any("surblocage" in image for image in compose_images()), "built, not pulled"


IMAGES = sorted((containerfile_images() | compose_images()).items())


@pytest.mark.parametrize("image, where", IMAGES)
def test_every_image_is_pinned_by_digest_or_allowlisted(image, where):
    if DIGEST.search(image):
        # keep the tag before the digest, so that a reader sees which version it is
        assert re.search(r":[\w.-]+@sha256:", image), f"{where}: {image} has a digest but no tag"
    else:
        assert image in allowlist(), (
            f"{where}: {image} is pulled by tag only: pin it (deploy/README.md, 'Pinning images')"
            f" or list it with the reason in {ALLOWLIST.name}"
        )


def test_every_allowlist_entry_says_why_and_is_still_used():
    used = set(containerfile_images()) | set(compose_images())
    entries = allowlist()
    assert entries, "an empty allowlist: delete the file and this test"
    for image, why in entries.items():
        assert len(why.split()) >= 5, f"{image}: say why it is not pinned"
        assert not DIGEST.search(image)
        assert image in used, f"{image} is no longer used: remove it from {ALLOWLIST.name}"


def test_the_allowlist_carries_a_visible_todo_with_the_command():
    text = ALLOWLIST.read_text()
    assert "TODO" in text
    assert "docker buildx imagetools inspect" in text
