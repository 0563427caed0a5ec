"""The closed sets of names the sandbox accepts, each spelled once.

A `Literal` rather than an enum: the values are the strings users type (`--sandbox bwrap`), the
CLI reads its choices from it (typer understands `Literal`), and mypy checks every literal
passed where one is expected. Stdlib only, so any layer may import it.
"""

from __future__ import annotations

from typing import Literal, get_args

BackendKind = Literal["bwrap", "docker", "none"]
"""What a built backend is (its `name`): `auto` always resolves to one of these."""

BackendName = Literal["auto", BackendKind]
"""How to isolate a program: `auto` (docker if an engine answers, else bwrap), `bwrap`,
`docker`, or `none` (no isolation: the fork server's unconfined mode, for trusted code)."""

BACKEND_NAMES: tuple[BackendName, ...] = get_args(BackendName)
