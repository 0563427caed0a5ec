"""The sandbox image: where the engine is, how the image is built, and whether it is current.

The image (`Dockerfile` at the repository root) holds a copy of the `sandbox` package, so it goes
stale whenever that package or the Dockerfile changes. `build_image` labels every image it builds
with a hash of its build context (`evocade.source-hash`); `image_status` compares that label with
the hash of the files on disk now. An image built by hand with `docker build` carries no label
and so counts as stale.

    build_image("evocade-base:bookworm")  -> "evocade-sandbox:latest"
    image_status()                        -> ImageStatus(present=True, stale=False, tag=...)

The engine is whatever `DOCKER_HOST` names (or the default socket), as for the `docker` CLI;
`scripts/dockerd.sh start` runs a private one on these machines and prints the export line.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import docker
import docker.errors
from docker.utils.build import exclude_paths

from sandbox.backends.base import SandboxUnavailable

IMAGE_REPOSITORY = "evocade-sandbox"
DEFAULT_IMAGE = f"{IMAGE_REPOSITORY}:latest"
IMAGE_ENV = "EVOCADE_SANDBOX_IMAGE"  # another tag or a registry path, e.g. for a remote engine
SOURCE_HASH_LABEL = "evocade.source-hash"
DEFAULT_BASE_IMAGE = "python:3.11-slim"  # the Dockerfile's own default
OFFLINE_BASE_IMAGE = "evocade-base:bookworm"  # what scripts/docker-base.sh makes
IMAGE_PYTHON = "/opt/venv/bin/python"  # the Dockerfile's venv
BUILD_TIMEOUT_SECONDS = 1800
ENGINE_TIMEOUT_SECONDS = 30
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # the classic builder colours a step's stderr
BUILD_HINT = (  # follows "build it with" / "rebuild it with"
    "`evocade sandbox build-image` (where no registry is reachable, first "
    "`scripts/docker-base.sh`, then `evocade sandbox build-image --base-image "
    f"{OFFLINE_BASE_IMAGE}`)"
)


class ImageStatus(NamedTuple):
    present: bool  # the engine has an image under `tag`
    stale: bool  # present, but built from other sources than those on disk (or unlabelled)
    tag: str


def image_name() -> str:
    """The sandbox image's reference: $EVOCADE_SANDBOX_IMAGE, else evocade-sandbox:latest."""
    return os.environ.get(IMAGE_ENV) or DEFAULT_IMAGE


def build_context() -> Path:
    """The repository root, which holds the Dockerfile beside the `sandbox` package."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "Dockerfile").is_file():
        raise SandboxUnavailable(
            f"no Dockerfile in {root}: building the sandbox image needs a source checkout "
            "(pip install -e .), not an installed wheel"
        )
    return root


def _dockerignore(root: Path) -> list[str]:
    path = root / ".dockerignore"
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def context_files(root: Path | None = None) -> list[str]:
    """The files `docker build` sends (the SDK's own .dockerignore matching), sorted."""
    root = root or build_context()
    paths = exclude_paths(str(root), _dockerignore(root), dockerfile="Dockerfile")
    return sorted(path for path in paths if (root / path).is_file())


def source_hash(root: Path | None = None) -> str:
    """SHA-256 over the build context's file names and contents: the image's identity."""
    root = root or build_context()
    digest = hashlib.sha256()
    for name in context_files(root):
        digest.update(name.encode() + b"\0")
        digest.update(hashlib.sha256((root / name).read_bytes()).digest())
    return digest.hexdigest()


def connect_engine(timeout_seconds: int = ENGINE_TIMEOUT_SECONDS) -> docker.DockerClient:
    """A client for the engine at $DOCKER_HOST (or the default socket) that has answered a ping."""
    where = os.environ.get("DOCKER_HOST") or "the default socket (DOCKER_HOST is not set)"
    try:
        client = docker.from_env(timeout=timeout_seconds)
        client.ping()
    except docker.errors.DockerException as error:
        raise SandboxUnavailable(
            f"no Docker engine answers at {where}: {error}; on these machines start one with "
            '`eval "$(scripts/dockerd.sh start)"`'
        ) from error
    return client


def image_status(client: docker.DockerClient | None = None, tag: str | None = None) -> ImageStatus:
    """Is the sandbox image there, and was it built from the sources on disk now?

    Raises SandboxUnavailable when no engine answers (doctor reports that reason as is).
    """
    tag = tag or image_name()
    client = client or connect_engine()
    try:
        image = client.images.get(tag)
    except docker.errors.ImageNotFound:
        return ImageStatus(present=False, stale=False, tag=tag)
    labels = image.labels or {}
    try:
        expected = source_hash()
    except SandboxUnavailable:  # no checkout to compare with: trust what is there
        return ImageStatus(present=True, stale=False, tag=tag)
    return ImageStatus(present=True, stale=labels.get(SOURCE_HASH_LABEL) != expected, tag=tag)


def default_base_image(client: docker.DockerClient) -> str:
    """python:3.11-slim, unless only the offline base (scripts/docker-base.sh) is at hand."""

    def has(name: str) -> bool:
        try:
            client.images.get(name)
        except docker.errors.ImageNotFound:
            return False
        return True

    if not has(DEFAULT_BASE_IMAGE) and has(OFFLINE_BASE_IMAGE):
        return OFFLINE_BASE_IMAGE
    return DEFAULT_BASE_IMAGE


def build_image(
    base_image: str | None = None,
    *,
    tag: str | None = None,
    log: Callable[[str], None] | None = None,
    network_mode: str = "host",
) -> str:
    """Build the sandbox image from the repository's Dockerfile; return its tag.

    `base_image`: any Debian-like image with Python 3.11 and venv; None means python:3.11-slim,
    or evocade-base:bookworm when only that one is present (no registry here). The build's
    RUN steps use the host's network (`network_mode="host"`), because an engine started with
    `--bridge=none` has no other, and `pip install` must reach PyPI. `log` receives the build's
    output line by line. Raises SandboxUnavailable when there is no engine or the build fails.
    """
    root = build_context()
    tag = tag or image_name()
    client = connect_engine(BUILD_TIMEOUT_SECONDS)
    base = base_image or default_base_image(client)
    digest = source_hash(root)
    try:
        previous = client.images.get(tag).id
    except docker.errors.ImageNotFound:
        previous = None
    if log:
        log(f"building {tag} from {root}/Dockerfile on base {base} (source hash {digest[:12]})")
    stream = _build_stream(client, root, tag, base, digest, network_mode)
    image_id = _follow_build(stream, f"building {tag} on base {base} failed", log)
    image = client.images.get(tag)
    if image_id is not None and image.id != image_id:
        raise SandboxUnavailable(f"building {tag} produced {image_id}, but {tag} is {image.id}")
    if previous and previous != image.id:
        # The image this build replaced is now untagged: drop it (and its own layers).
        with contextlib.suppress(docker.errors.DockerException):
            client.images.remove(previous)
    client.close()
    return tag


def _build_stream(
    client: docker.DockerClient, root: Path, tag: str, base: str, digest: str, network_mode: str
) -> Iterator[dict[str, Any]]:
    """The engine's build of `root`'s Dockerfile, labelled with its source hash, as the
    decoded chunks of its progress stream (an engine error comes as an "error" chunk)."""
    try:
        yield from client.api.build(
            path=str(root),
            tag=tag,
            buildargs={"BASE_IMAGE": base},
            labels={SOURCE_HASH_LABEL: digest},
            network_mode=network_mode,
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
        )
    except docker.errors.DockerException as error:
        yield {"error": str(error)}


def _follow_build(
    stream: Iterable[dict[str, Any]], failed: str, log: Callable[[str], None] | None
) -> str | None:
    """Read a build's progress to its end: its output lines to `log`, the id of the image it
    made (None if it named none); SandboxUnavailable with `failed` and the last error."""
    image_id = None
    errors: list[str] = []
    for chunk in stream:
        if "stream" in chunk and log:
            text = _ANSI.sub("", str(chunk["stream"])).rstrip("\n")
            if text.strip():
                log(text)
        if "error" in chunk:
            errors.append(str(chunk["error"]).strip())
        if "aux" in chunk and isinstance(chunk["aux"], dict) and "ID" in chunk["aux"]:
            image_id = chunk["aux"]["ID"]
    if errors:
        raise SandboxUnavailable(f"{failed}: {errors[-1]}")
    return image_id
