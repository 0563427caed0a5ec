"""The hostile programs' headers, the suite's recorded results, and the SECURITY.md they make.

Every file in `programs/` is one hostile policy. Its module docstring says, in prose, what it
tries and which layer should stop it, and ends with a header block of `key: value` lines that
the suite reads (a blank line before it):

    attack:        one line for the table in docs/SECURITY.md
    family:        introspection | native | resources | host | process-split | network |
                   forgery | persistence
    layer:         what stops it with the checker off (the OS layers and the harness)
    expect:        status with the checker off, on every backend; several seeds: one status per
                   seed, comma-separated ("error, ok")
    expect-bwrap:  (optional) overrides `expect` on that backend; likewise expect-docker
    checker:       reject | accept: what the static checker must say
    checked:       status with the checker on; required with `checker: accept` (a rejected
                   program is never run, its status is `rejected`)
    seeds:         (optional, default 1) seeds 0..N-1, played one after another in one sandbox
    runs:          (optional, default 1) evaluations of the program, one after another
    max-steps:     (optional, default 30) the episode's step cap
    max-seconds:   (optional) every episode must end within this wall time ("fails at once")
    act-seconds:   (optional, default 1) the act() time limit: more for a program whose
                   outcome needs work done before a wall stops it (a memory bomb on a loaded
                   machine), so that the outcome does not depend on the machine's speed
    score:         (optional) `noop`: the policy played NOOP at every step and its return is
                   what NOOP scores (on top of the replay check every program gets)

Placeholders in the source are filled in by the test before the program runs, so that a program
can aim at the real host: @HOST_DIR@ (a world-readable directory on the host holding
@SENTINEL@ and the evocade database @DB_PATH@), @REPO@ (this checkout), @TCP_PORT@ and
@UDP_PORT@ (listeners on the host's 127.0.0.1), @SECRET_NAME@ (an environment variable set in
the test process), @DOCKER_SOCKET@ (the Docker engine's socket on the host). A line
`# @FIND_HARNESS@` gets `FIND_HARNESS` after it: a `harness_pid()` that finds the trusted
harness wherever the backend runs it (the program must `import os`).

A program that gets what it was after prints "ESC" + "APED" and what it got; the suite fails on
that word anywhere in a result.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PROGRAMS_DIR = HERE / "programs"
RESULTS_PATH = HERE / "results.json"
TEMPLATE_PATH = HERE / "security_template.md"
DOC_PATH = HERE.parents[1] / "docs" / "SECURITY.md"

BACKENDS = ("bwrap", "docker")
MODES = ("off", "on")  # the static checker
FAMILIES = (
    "introspection",
    "native",
    "resources",
    "host",
    "process-split",
    "network",
    "forgery",
    "persistence",
)
STATUSES = ("ok", "rejected", "error", "timeout", "memory", "invalid_action", "crashed")
REQUIRED = ("attack", "family", "layer", "expect", "checker")
OPTIONAL = (
    "expect-bwrap",
    "expect-docker",
    "checked",
    "seeds",
    "runs",
    "max-steps",
    "max-seconds",
    "act-seconds",
    "score",
)
_HEADER_LINE = re.compile(r"^([a-z][a-z-]*):\s*(.+)$")


# The harness is the policy's parent where it execs the policy (docker); under bwrap the policy
# is forked by a keeper outside the sandbox's pid namespace, so getppid() says 0 there, and the
# harness is the sandbox's python process under the other uid of the policy's pair.
FIND_HARNESS = """
def harness_pid():
    parent = os.getppid()
    if parent:
        return parent
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/status") as status:
                uid = int([line for line in status if line.startswith("Uid:")][0].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                python = b"python" in cmdline.read()
        except (OSError, IndexError, ValueError):
            continue
        if python and uid == os.getuid() - 1:
            return int(entry)
    return parent
"""


class HeaderError(ValueError):
    """A program's header is missing, incomplete or inconsistent."""


@dataclass(frozen=True)
class Program:
    name: str  # the file name without .py
    path: Path
    source: str
    summary: str  # the docstring's first line
    attack: str
    family: str
    layer: str
    expect: dict[str, tuple[str, ...]]  # backend -> statuses, one per seed
    checker: str  # "reject" | "accept"
    checked: tuple[str, ...] | None
    seeds: int
    runs: int
    max_steps: int
    max_seconds: float | None
    act_seconds: float
    score: str | None

    def expected(self, backend: str, mode: str) -> tuple[str, ...]:
        """The statuses the suite requires, one per seed."""
        if mode == "off":
            return self.expect[backend]
        if self.checker == "reject":
            return ("rejected",)
        assert self.checked is not None
        return self.checked

    def fill(self, values: dict[str, str]) -> str:
        """The source with the placeholders replaced."""
        source = self.source
        for key, value in values.items():
            source = source.replace(f"@{key}@", value)
        leftover = re.findall(r"@[A-Z_]+@", source)
        if leftover:
            raise HeaderError(f"{self.name}: unknown placeholders {sorted(set(leftover))}")
        return source


def _statuses(text: str, name: str, key: str, seeds: int) -> tuple[str, ...]:
    statuses = tuple(part.strip() for part in text.split(","))
    unknown = [status for status in statuses if status not in STATUSES]
    if unknown:
        raise HeaderError(f"{name}: {key} has unknown statuses {unknown}; use {STATUSES}")
    if len(statuses) == 1:
        statuses *= seeds
    if len(statuses) != seeds:
        raise HeaderError(f"{name}: {key} lists {len(statuses)} statuses for {seeds} seeds")
    return statuses


def parse_header(path: Path) -> Program:
    source = path.read_text()
    name = path.stem
    try:
        docstring = ast.get_docstring(ast.parse(source), clean=True)
    except SyntaxError as error:
        raise HeaderError(f"{name}: does not parse: {error}") from error
    if not docstring:
        raise HeaderError(f"{name}: no module docstring")
    paragraphs = docstring.strip().split("\n\n")
    if len(paragraphs) < 3:
        raise HeaderError(f"{name}: the docstring needs a summary, prose and the header block")
    fields: dict[str, str] = {}
    for line in paragraphs[-1].splitlines():
        match = _HEADER_LINE.match(line.strip())
        if match is None:
            raise HeaderError(f"{name}: header line {line!r} is not `key: value`")
        key, value = match.groups()
        if key not in REQUIRED + OPTIONAL:
            raise HeaderError(f"{name}: unknown header key {key!r}")
        if key in fields:
            raise HeaderError(f"{name}: header key {key!r} given twice")
        fields[key] = value.strip()
    missing = [key for key in REQUIRED if key not in fields]
    if missing:
        raise HeaderError(f"{name}: header lacks {missing}")
    if fields["family"] not in FAMILIES:
        raise HeaderError(f"{name}: family {fields['family']!r} is not one of {FAMILIES}")
    if fields["checker"] not in ("reject", "accept"):
        raise HeaderError(f"{name}: checker must be reject or accept")
    if (fields["checker"] == "accept") != ("checked" in fields):
        raise HeaderError(f"{name}: `checked` is required with `checker: accept`, and only then")
    seeds = int(fields.get("seeds", "1"))
    expect = {
        backend: _statuses(fields.get(f"expect-{backend}", fields["expect"]), name, "expect", seeds)
        for backend in BACKENDS
    }
    checked = _statuses(fields["checked"], name, "checked", seeds) if "checked" in fields else None
    if checked is not None and "rejected" in checked:
        raise HeaderError(f"{name}: write `checker: reject` instead of `checked: rejected`")
    if "score" in fields and fields["score"] != "noop":
        raise HeaderError(f"{name}: score must be `noop`")
    return Program(
        name=name,
        path=path,
        source=source,
        summary=paragraphs[0].replace("\n", " ").strip(),
        attack=fields["attack"],
        family=fields["family"],
        layer=fields["layer"],
        expect=expect,
        checker=fields["checker"],
        checked=checked,
        seeds=seeds,
        runs=int(fields.get("runs", "1")),
        max_steps=int(fields.get("max-steps", "30")),
        max_seconds=float(fields["max-seconds"]) if "max-seconds" in fields else None,
        act_seconds=float(fields.get("act-seconds", "1")),
        score=fields.get("score"),
    )


def load_programs() -> list[Program]:
    """Every program, in table order (family, then name)."""
    programs = [parse_header(path) for path in sorted(PROGRAMS_DIR.glob("*.py"))]
    return sorted(programs, key=lambda p: (FAMILIES.index(p.family), p.name))


# -- what a run showed -------------------------------------------------------------------------

_ERRNO = re.compile(r"\[Errno (\d+)\]")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")
_NUMBER = re.compile(r"\d+(\.\d+)?")
_MAX_EVIDENCE = 80


def _exception_line(lines: list[str]) -> str:
    """The `Kind: message` line of a traceback: the first line after the last frame."""
    last_frame = max((i for i, line in enumerate(lines) if line.startswith("  ")), default=0)
    return lines[last_frame + 1] if last_frame + 1 < len(lines) else ""


def evidence(status: str, error: str | None, rules: list[str] | None = None) -> str:
    """A short, deterministic account of what stopped an episode, for the table: the rules a
    rejection broke, or the exception class (and errno) the policy died with, or the harness's
    message with addresses and numbers taken out."""
    import errno as errno_names

    if status == "rejected":
        return "checker: " + ", ".join(sorted(set(rules or [])))
    if not error:
        return ""
    lines = [line for line in error.strip().splitlines() if line.strip()]
    if lines and lines[0].startswith("Traceback"):
        line = _exception_line(lines)
        kind = line.split(":", 1)[0].strip()
        code = _ERRNO.search(line)
        if code:
            kind += " " + errno_names.errorcode.get(int(code.group(1)), code.group(1))
        return kind
    first = lines[0].split(";", 1)[0] if lines else ""
    if status == "crashed":
        first = first.split(": ", 1)[0]  # the sandbox's stderr tail follows
    text = _NUMBER.sub("N", _ADDRESS.sub("<address>", first)).strip()
    return text if len(text) <= _MAX_EVIDENCE else text[: _MAX_EVIDENCE - 1] + "…"


def load_results(path: Path = RESULTS_PATH) -> dict[str, Any]:
    if not path.is_file():
        return {"programs": {}, "faults": {}}
    data = json.loads(path.read_text())
    data.setdefault("programs", {})
    data.setdefault("faults", {})
    return data


def merge_results(new: dict[str, Any], path: Path = RESULTS_PATH) -> None:
    """Fold this session's observations into the results file (cells not run stay as they were;
    programs that no longer exist are dropped)."""
    data = load_results(path)
    for name, cells in new.get("programs", {}).items():
        data["programs"].setdefault(name, {}).update(cells)
    data["faults"].update(new.get("faults", {}))
    existing = {p.stem for p in PROGRAMS_DIR.glob("*.py")}
    data["programs"] = {k: v for k, v in data["programs"].items() if k in existing}
    text = json.dumps(data, indent=1, sort_keys=True) + "\n"
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


def cell_key(backend: str, mode: str) -> str:
    return f"{backend}/checker-{mode}"


# -- the document ------------------------------------------------------------------------------


_MARKDOWN = {"\\": "\\\\", "|": "\\|", "*": "\\*", "_": "\\_", "`": "\\`", "<": "&lt;", ">": "&gt;"}


def _md(text: str) -> str:
    """Plain text for a table cell: markdown and HTML specials escaped, one line."""
    return "".join(_MARKDOWN.get(char, char) for char in text.replace("\n", " "))


def _cell(observed: dict[str, Any] | None) -> str:
    if observed is None:
        return "not run"
    statuses = observed["statuses"]
    shown = statuses[0] if len(set(statuses)) == 1 else ", ".join(statuses)
    text = f"`{shown}`"
    if observed.get("evidence"):
        text += f"<br><sub>{_md(observed['evidence'])}</sub>"
    return text


def render(programs: list[Program], results: dict[str, Any]) -> str:
    """docs/SECURITY.md from the template, the programs' headers and the recorded results."""
    rows = [
        "| # | Attack (program) | Family | What stops it (checker off) | bwrap, checker off "
        "| docker, checker off | bwrap, checker on | docker, checker on |",
        "| ---: | --- | --- | --- | --- | --- | --- | --- |",
    ]
    recorded = results.get("programs", {})
    for number, program in enumerate(programs, 1):
        cells = recorded.get(program.name, {})
        rows.append(
            f"| {number} | {_md(program.attack)} (`{program.name}`) | {program.family} "
            f"| {_md(program.layer)} | "
            + " | ".join(
                _cell(cells.get(cell_key(backend, mode))) for mode in MODES for backend in BACKENDS
            )
            + " |"
        )
    fault_rows = ["| Fault | What the suite saw |", "| --- | --- |"]
    for name, fault in sorted(results.get("faults", {}).items()):
        fault_rows.append(f"| {_md(name)} | {_md(fault['outcome'])} |")
    rejected = sum(program.checker == "reject" for program in programs)
    counts = (
        f"{len(programs)} hostile programs; with the checker on, {rejected} are rejected before "
        f"they run and {len(programs) - rejected} pass it and are stopped by the layers below."
    )
    template = TEMPLATE_PATH.read_text()
    return (
        template.replace("{{COUNTS}}", counts)
        .replace("{{PROGRAMS_TABLE}}", "\n".join(rows))
        .replace("{{FAULTS_TABLE}}", "\n".join(fault_rows))
    )
