"""The policy process shares nothing with its harness (issue #11), on both backends: a session
and process group of its own, cwd `/`, nice 0 however the caller was reniced, the I/O priority
reset, and an interpreter whose sys.path holds no /tmp, cwd or user-site entry (what
`python -I` gives; see `policy_argv` for why not -I itself).

Checked from inside a real policy with the checker off, through /proc (the seccomp allowlist
refuses getsid/getpgrp/getpriority themselves); the I/O priority, which /proc does not show and
the policy may not ask, is checked on `reset_priorities()` itself, the call both backends make
before the policy starts.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.evaluate import evaluate
from sandbox.names import BackendName
from sandbox.results import Status
from sandbox.settings import EnvSettings, Limits
from tests.adversarial.catalog import FIND_HARNESS
from tests.conftest import backend_or_skip

LIMITS = Limits(act_seconds=5.0, episode_cpu_seconds=10)
CALLER_NICE = 5
SYS_IOPRIO_SET, SYS_IOPRIO_GET = 251, 252  # x86-64
IOPRIO_WHO_PROCESS, IOPRIO_CLASS_BE = 1, 2
BACKENDS = [
    pytest.param("bwrap", marks=pytest.mark.bwrap),
    pytest.param("docker", marks=pytest.mark.docker),
]

PROBE = (
    "import json, os, sys\n"
    + FIND_HARNESS
    + """

def stat(pid):
    text = open(f"/proc/{pid}/stat").read()
    fields = text[text.rindex(")") + 2 :].split()  # from field 3, the state
    return {"pgrp": int(fields[2]), "sid": int(fields[3]), "nice": int(fields[16])}


def act(obs):
    harness = harness_pid()
    print(json.dumps({
        "pid": os.getpid(), "me": stat("self"), "harness_pid": harness,
        "harness": stat(harness), "cwd": os.getcwd(), "path": sys.path,
        "flags": [sys.flags.safe_path, sys.flags.no_site, sys.flags.no_user_site,
                  sys.flags.ignore_environment],
        "site": "site" in sys.modules, "env": dict(os.environ),
        "main_file": getattr(sys.modules["__main__"], "__file__", None),
        # entries on the policy's own /tmp (a checkout under the host's /tmp is a read-only
        # bind of its own, on another device)
        "on_tmp": [e for e in sys.path if os.path.isdir(e)
                   and os.stat(e).st_dev == os.stat("/tmp").st_dev],
    }))
    return 0
"""
)


def _ioprio(who: int = 0) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.syscall(SYS_IOPRIO_GET, IOPRIO_WHO_PROCESS, who))


def _set_ioprio(level: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.syscall(SYS_IOPRIO_SET, IOPRIO_WHO_PROCESS, 0, (IOPRIO_CLASS_BE << 13) | level) == 0


@pytest.fixture
def reniced_caller() -> Iterator[None]:
    """This thread at nice 5 and I/O priority BE/7 while the test runs (threads and processes
    started meanwhile inherit both), then back to 0 and BE/4 (the test runs as root)."""
    if os.uname().machine != "x86_64" or os.geteuid() != 0:
        pytest.skip("renices the caller and back: x86-64, as root")
    os.setpriority(os.PRIO_PROCESS, 0, CALLER_NICE)
    _set_ioprio(7)
    try:
        yield
    finally:
        os.setpriority(os.PRIO_PROCESS, 0, 0)
        _set_ioprio(4)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_policy_has_its_own_session_cwd_priority_and_path(
    backend_name: BackendName, reniced_caller
) -> None:
    backend = backend_or_skip(backend_name)  # made now: its fork server from the reniced caller
    try:
        result = evaluate(
            PROBE,
            "Pong",
            seeds=[0],
            env=EnvSettings(max_steps=1),
            limits=LIMITS,
            backend=backend,
            check=False,
        )
    finally:
        backend.close()
    episode = result.episodes[0]
    assert episode.status == Status.OK, episode.error
    facts = json.loads(episode.output)
    me, harness = facts["me"], facts["harness"]
    # A session and process group of its own, led by itself: nothing the harness is in.
    assert me["sid"] == me["pgrp"] == facts["pid"], facts
    assert facts["harness_pid"] != facts["pid"]
    assert harness["sid"] != me["sid"] and harness["pgrp"] != me["pgrp"], facts
    assert facts["cwd"] == "/"
    # Nice 0 although everything it came from ran at 5 (bwrap forks the harness from a fork
    # server started here, so the harness shows the caller's 5; docker's harness resets itself).
    assert me["nice"] == 0, facts
    if backend_name == "bwrap":
        assert harness["nice"] == CALLER_NICE, "the test did not renice what the sandbox came from"
    # -s -S -P with PYTHONHASHSEED alone: no site, no user site, no script dir or cwd on the path.
    assert facts["flags"] == [True, 1, 1, 0], facts["flags"]
    assert facts["site"] is False
    # PYTHONHASHSEED alone, plus the LC_CTYPE that CPython itself sets under the C locale
    # (PEP 538's coercion: the docker image has no other locale).
    assert facts["env"] in ({"PYTHONHASHSEED": "0"}, {"PYTHONHASHSEED": "0", "LC_CTYPE": "C.UTF-8"})
    assert facts["main_file"] is None
    for entry in facts["path"]:
        assert entry not in ("", ".", "/", "/tmp"), facts["path"]
        assert "/.local/" not in entry, entry  # no user site
    assert facts["on_tmp"] == [], facts["path"]


def test_reset_priorities_undoes_a_reniced_parent() -> None:
    """What both backends call before the policy starts (bwrap's zygote, docker's harness):
    from nice 5 and best-effort 7, back to nice 0 and best-effort 4."""
    if os.uname().machine != "x86_64" or os.geteuid() != 0:
        pytest.skip("lowering a nice value needs root (CAP_SYS_NICE); x86-64 numbers")
    code = f"""
import ctypes, json, os
from sandbox.runtime.namespaces import reset_priorities
libc = ctypes.CDLL(None, use_errno=True)
def ioprio():
    return libc.syscall({SYS_IOPRIO_GET}, {IOPRIO_WHO_PROCESS}, 0)
os.setpriority(os.PRIO_PROCESS, 0, 5)
libc.syscall({SYS_IOPRIO_SET}, {IOPRIO_WHO_PROCESS}, 0, ({IOPRIO_CLASS_BE} << 13) | 7)
before = [os.getpriority(os.PRIO_PROCESS, 0), ioprio()]
reset_priorities()
print(json.dumps([before, [os.getpriority(os.PRIO_PROCESS, 0), ioprio()]]))
"""
    completed = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=Path(__file__).resolve().parents[2],  # this checkout's `sandbox`
    )
    before, after = json.loads(completed.stdout)
    assert before == [5, (IOPRIO_CLASS_BE << 13) | 7]
    assert after == [0, (IOPRIO_CLASS_BE << 13) | 4]
