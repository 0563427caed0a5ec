"""Render docs/SECURITY.md from the adversarial suite's own results.

    python -m pytest tests/adversarial                 # plays every program; writes results.json
    python tests/adversarial/make_security_doc.py      # writes docs/SECURITY.md from it
    python tests/adversarial/make_security_doc.py --check   # exit 1 when the doc is out of date

The table's rows come from the programs' headers (attack, family, layer) and its cells from
`tests/adversarial/results.json`, which the test session writes with the status each program
really ended with on each backend, checker off and on, and a short account of what stopped it.
The prose around the tables is `security_template.md`. `test_security_doc.py` fails when the
document, the results or the headers disagree.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.adversarial.catalog import DOC_PATH, load_programs, load_results, render


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only say whether it is current")
    args = parser.parse_args(argv)
    text = render(load_programs(), load_results())
    current = DOC_PATH.read_text() if DOC_PATH.is_file() else ""
    if args.check:
        if current != text:
            print(f"{DOC_PATH} is out of date: run {Path(__file__).name}", file=sys.stderr)
            return 1
        print(f"{DOC_PATH} is up to date")
        return 0
    DOC_PATH.parent.mkdir(parents=True, exist_ok=True)
    if current != text:
        DOC_PATH.write_text(text)
        print(f"wrote {DOC_PATH}")
    else:
        print(f"{DOC_PATH} unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
