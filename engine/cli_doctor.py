"""`evocade doctor` and `evocade sandbox build-image`: is everything here, and make the image."""

from __future__ import annotations

import json
import platform
from importlib import metadata
from typing import Annotated, Any

import typer

from engine.db_option import DEFAULT_DB, DbOption, refuse_unusable_location
from engine.errors import UserError
from engine.textsafe import safe_line
from sandbox.names import BackendName

sandbox_app = typer.Typer(help="Manage the sandbox (the Docker image).", no_args_is_help=True)

_PACKAGES = (
    "gymnasium",
    "ale-py",
    "ocatari",
    "numpy",
    "RestrictedPython",
    "pyseccomp",
    "SQLAlchemy",
    "docker",
    "openai",
)


def _backend_status(name: BackendName) -> dict[str, Any]:
    from sandbox.backends.base import SandboxUnavailable
    from sandbox.evaluate import make_backend
    from sandbox.settings import Limits

    try:
        make_backend(name, Limits())
    except (SandboxUnavailable, ImportError) as error:
        return {"available": False, "reason": str(error)}
    return {"available": True, "reason": ""}


def _image_status() -> dict[str, Any]:
    from sandbox.backends.base import SandboxUnavailable
    from sandbox.backends.docker_image import image_status

    try:
        status = image_status()
    except SandboxUnavailable as error:
        return {"tag": None, "present": False, "stale": False, "reason": str(error)}
    return {"tag": status.tag, "present": status.present, "stale": status.stale, "reason": ""}


def _database_status(db: str) -> dict[str, Any]:
    """Where the database is, named as every other command names it (never with a password)."""
    from storage.db import resolve

    try:
        refuse_unusable_location(db)  # what every other command would refuse, said here too
    except UserError as error:
        return {"location": None, "exists": None, "problem": str(error)}
    location = resolve(db)
    if location.path is None:
        return {"location": location.display, "exists": None, "problem": ""}
    path = location.path
    return {"location": str(path), "exists": path.exists(), "problem": ""}


def _cluster_status(address: str) -> dict[str, Any]:
    """The Ray cluster's nodes and whether each one's sandbox works (proven by starting one
    there), or the one-line reason the cluster cannot be asked."""
    from engine.executors import RayUnavailable, cluster_report

    try:
        nodes = cluster_report(address)
    except RayUnavailable as error:
        return {"address": address, "nodes": [], "problem": str(error)}
    return {"address": address, "nodes": nodes, "problem": ""}


def doctor_report(db: str, ray_address: str | None = None) -> dict[str, Any]:
    """Everything `evocade doctor` prints, as data (a test calls this directly)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for package in _PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "backends": {name: _backend_status(name) for name in ("bwrap", "docker")},
        "image": _image_status(),
        "versions": versions,
        "database": _database_status(db),
        **({"cluster": _cluster_status(ray_address)} if ray_address else {}),
    }


def _print_cluster(cluster: dict[str, Any]) -> bool:
    """The cluster section; True when at least one node can play episodes."""
    address = safe_line(cluster["address"])
    if cluster["problem"]:
        print(f"cluster        {address}: unusable: {safe_line(cluster['problem'])}")
        return False
    alive = [node for node in cluster["nodes"] if node["alive"]]
    working = [node for node in alive if node["sandbox_works"]]
    cores = sum(node["cores"] for node in working)
    print(
        f"cluster        {address}: {len(alive)} nodes alive, {len(working)} with a working "
        f"sandbox, {cores} cores to play on"
    )
    for node in cluster["nodes"]:
        name = safe_line(f"{node['ip']}/{node['node_id'][:12]}")
        if not node["alive"]:
            print(f"  node {name}  dead")
            continue
        if node["sandbox_works"]:
            state = f"sandbox {safe_line(str(node['backend']))} works"
        else:
            state = f"sandbox refused: {safe_line(node['reason'])}"
        print(f"  node {name}  {node['cores']} cores  {state}")
    return bool(working)


def doctor_command(
    db: DbOption = DEFAULT_DB,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    ray_address: Annotated[
        str | None,
        typer.Option(
            envvar="EVOCADE_RAY_ADDRESS",
            help="Also check this Ray cluster (host:port): its nodes, their cores, and whether "
            "each one's sandbox works.",
        ),
    ] = None,
) -> None:
    """Check the sandbox backends, the sandbox image, library versions and the database.

    Says for each backend whether it is available, or exactly why not. Exit 1 when no
    backend is available (or, with --ray-address, when no node of the cluster can play).

    Example: evocade doctor --json --ray-address 127.0.0.1:6379
    """
    report = doctor_report(db, ray_address)
    if as_json:
        print(json.dumps(report, indent=2))  # ensure_ascii: control characters escaped
    else:
        for name, status in report["backends"].items():
            state = (
                "available"
                if status["available"]
                else f"unavailable: {safe_line(status['reason'])}"
            )
            print(f"backend {name:<6} {state}")
        image = report["image"]
        if image["reason"]:
            print(f"image          unknown: {safe_line(image['reason'])}")
        else:
            state = (
                ("stale (rebuild: evocade sandbox build-image)" if image["stale"] else "up to date")
                if image["present"]
                else "missing"
            )
            print(f"image          {safe_line(image['tag'])}: {state}")
        print(
            "versions       "
            + safe_line(", ".join(f"{k} {v or 'missing'}" for k, v in report["versions"].items()))
        )
        database = report["database"]
        if database["problem"]:
            print(f"database       unusable: {safe_line(database['problem'])}")
        else:
            exists = {True: "exists", False: "not created yet", None: "URL"}[database["exists"]]
            print(f"database       {safe_line(database['location'])} ({exists})")
        if "cluster" in report:
            _print_cluster(report["cluster"])
    usable = any(status["available"] for status in report["backends"].values())
    if "cluster" in report:
        cluster = report["cluster"]
        usable = usable and any(n["alive"] and n["sandbox_works"] for n in cluster["nodes"])
    raise typer.Exit(0 if usable else 1)


@sandbox_app.command("build-image")
def build_image_command(
    base_image: Annotated[
        str | None,
        typer.Option(
            help="Base image with Python 3.11 (default python:3.11-slim, or the "
            "offline evocade-base:bookworm when only it is present)."
        ),
    ] = None,
    tag: Annotated[
        str | None, typer.Option(help="Image tag (default evocade-sandbox:latest).")
    ] = None,
) -> None:
    """Build the Docker sandbox image from the repository's Dockerfile.

    Example: evocade sandbox build-image --base-image evocade-base:bookworm
    """
    from sandbox.backends.base import SandboxUnavailable
    from sandbox.backends.docker_image import build_image

    try:
        built = build_image(base_image, tag=tag, log=lambda text: print(safe_line(text)))
    except SandboxUnavailable as error:
        raise UserError(str(error)) from None
    print(f"built {safe_line(built)}")


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor_command)
    app.add_typer(sandbox_app, name="sandbox")
