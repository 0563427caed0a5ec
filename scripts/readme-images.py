"""Regenerate the README's two images with the project's own commands, from a real short run.

    .venv/bin/python scripts/readme-images.py          # writes docs/img/run-page.png and
                                                       # docs/img/replay-pong.gif

1. `evocade run`: a 10-iteration offline Pong run (the mutate proposer, bwrap), in a
   temporary database;
2. `evocade serve` on a free loopback port, and Debian's headless `chromium --screenshot` of
   the run page;
3. `evocade replay` of the best program's first episode: 100 frames, scale 1.

Needs what the tests need: bwrap and `chromium` (scripts/install.sh installs both). Takes a
few minutes on a small machine; nothing outside docs/img/ is written but the temporary folder.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "docs" / "img"
RUN = ["--game", "Pong", "--iterations", "10", "--episodes", "2", "--max-steps", "1500"]
REPLAY = ["--scale", "1", "--stride", "3", "--to", "300"]  # 100 frames, well under 1 MB
WINDOW = "1280,1420"  # the run page of a 10-iteration run, without much blank below
START_SECONDS = 120.0
ENVIRONMENT = {**os.environ, "PYTHONPATH": str(ROOT)}
DB = "evocade.db"


def evocade(*args: str, work: Path, capture: bool = False) -> str:
    """Run one evocade command as a user would (this checkout's, from the folder `work`, so
    the database is named as the user named it: `evocade.db`)."""
    command = [sys.executable, "-m", "engine.cli", *args]
    print("$ evocade " + " ".join(args), file=sys.stderr, flush=True)
    done = subprocess.run(
        command, cwd=work, env=ENVIRONMENT, check=True, text=True, stdout=subprocess.PIPE
    )
    if not capture:
        print(done.stdout, end="", file=sys.stderr)
    return done.stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_served(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_SECONDS
    while True:
        if server.poll() is not None:
            raise SystemExit("evocade serve stopped before it answered")
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"evocade serve did not answer within {START_SECONDS:g} s")
        time.sleep(0.3)


def screenshot(url: str, out: Path, profile: Path) -> None:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    command += ["--no-first-run", "--disable-background-networking", "--disable-sync"]
    command += [f"--user-data-dir={profile}", f"--window-size={WINDOW}"]
    command += [f"--screenshot={out}", url]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="evocade-readme-") as work:
        base = Path(work)
        db = DB
        run = ["run", *RUN, "--sandbox", "bwrap", "--db", db, "--json"]
        outcome = evocade(*run, work=base, capture=True)
        run_id = json.loads(outcome.strip().splitlines()[-1])["run_id"]
        best = json.loads(evocade("best", run_id, "--db", db, "--json", work=base, capture=True))

        gif = IMAGES / "replay-pong.gif"
        replay = ["replay", best["evaluation_id"], *REPLAY, "--out", str(gif), "--db", db]
        evocade(*replay, work=base)

        port = free_port()
        serve = [sys.executable, "-m", "engine.cli", "serve", "--db", db, "--port", str(port)]
        serve += ["--cache-dir", str(base / "cache")]
        print(f"$ evocade serve --db {db} --port {port}", file=sys.stderr, flush=True)
        server = subprocess.Popen(serve, cwd=base, env=ENVIRONMENT)
        try:
            url = f"http://127.0.0.1:{port}/run/{run_id}"
            wait_until_served(url, server)
            screenshot(url, IMAGES / "run-page.png", base / "chromium-profile")
        finally:
            server.terminate()
            server.wait(timeout=60)
    for image in (IMAGES / "run-page.png", gif):
        print(f"wrote {image.relative_to(ROOT)} ({os.path.getsize(image) // 1024} KiB)")


if __name__ == "__main__":
    main()
