"""storage is a leaf: it must import neither `sandbox` nor `engine` (DESIGN.md §1)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_imports_storage_never_pulls_in_sandbox_or_engine() -> None:
    code = (
        "import sys, storage, storage.repository, storage.queries, storage.db, storage.encode\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('sandbox', 'engine'))\n"
        "print(','.join(bad))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == ""
