"""docs/SECURITY.md, the recorded results and the programs' headers agree.

The document is generated (make_security_doc.py) from results.json, which the suite writes
from what the programs really did. These tests fail when a program is added, removed or has its
header changed without the suite being run and the document rendered again, and when a recorded
status is not the one the header expects.
"""

from __future__ import annotations

from tests.adversarial.catalog import (
    BACKENDS,
    DOC_PATH,
    FAMILIES,
    MODES,
    PROGRAMS_DIR,
    cell_key,
    load_programs,
    load_results,
    render,
)

RERUN = (
    "run `python -m pytest tests/adversarial` and `python tests/adversarial/make_security_doc.py`"
)


def test_security_every_program_has_a_header_the_suite_reads() -> None:
    programs = load_programs()  # raises HeaderError naming the file and the problem
    assert len(programs) == len(list(PROGRAMS_DIR.glob("*.py"))) >= 30
    assert {program.family for program in programs} == set(FAMILIES)
    attacks = [program.attack for program in programs]
    assert len(attacks) == len(set(attacks)), "two programs describe the same attack"
    rejected = sum(program.checker == "reject" for program in programs)
    assert rejected > len(programs) / 2, "with the checker on, most programs must be rejected"


def test_security_results_cover_every_program_as_its_header_expects() -> None:
    recorded = load_results()["programs"]
    problems = []
    for program in load_programs():
        cells = recorded.get(program.name)
        if cells is None:
            problems.append(f"{program.name}: no recorded results")
            continue
        for backend in BACKENDS:
            for mode in MODES:
                observed = cells.get(cell_key(backend, mode))
                expected = list(program.expected(backend, mode))
                if observed is None:
                    problems.append(f"{program.name} {backend} checker {mode}: not run")
                elif observed["statuses"] != expected:
                    problems.append(
                        f"{program.name} {backend} checker {mode}: recorded "
                        f"{observed['statuses']}, header expects {expected}"
                    )
    assert problems == [], f"{RERUN}:\n" + "\n".join(problems)


def test_security_doc_is_rendered_from_the_current_results() -> None:
    assert DOC_PATH.is_file(), RERUN
    document = DOC_PATH.read_text()
    missing = [p.name for p in load_programs() if f"(`{p.name}`)" not in document]
    assert missing == [], f"programs missing from {DOC_PATH}: {missing}; {RERUN}"
    assert document == render(load_programs(), load_results()), f"{DOC_PATH} is stale; {RERUN}"
