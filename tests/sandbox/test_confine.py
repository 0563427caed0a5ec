"""The seccomp allowlist itself (sandbox/runtime/confine.py), outside any sandbox: its exported
form, and what it does to a process that loads it. The adversarial programs
`native_x32_syscall` and `native_i386_int80` show the same from a hostile policy.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from sandbox.runtime.confine import build_filter

ROOT = Path(__file__).resolve().parents[2]
AUDIT_ARCH_X86_64 = 3221225534
# What round two used (setpriority, ioprio_set, io_setup, timer_create, sync, syncfs, fadvise64,
# flock, setxattrat, fchmodat2) and what any escape needs (socket, clone, fork, execve, ptrace).
REFUSED = {
    141: "setpriority",
    251: "ioprio_set",
    206: "io_setup",
    222: "timer_create",
    162: "sync",
    306: "syncfs",
    221: "fadvise64",
    73: "flock",
    463: "setxattrat",
    452: "fchmodat2",
    41: "socket",
    56: "clone",
    57: "fork",
    59: "execve",
    101: "ptrace",
}

pytestmark = pytest.mark.skipif(os.uname().machine != "x86_64", reason="x86-64 numbers")


def _pfc() -> str:
    """The filter as libseccomp's pseudo filter code (it writes to a real file descriptor)."""
    with tempfile.TemporaryFile("w+") as out:
        build_filter().export_pfc(out)
        out.seek(0)
        return out.read()


def test_confine_filter_is_an_allowlist_for_x86_64_only() -> None:
    text = _pfc()
    arches = re.findall(r"# filter for arch (\S+) \((\d+)\)", text)
    assert arches == [("x86_64", str(AUDIT_ARCH_X86_64))]  # no x32, no i386 rules
    assert re.search(r"# default action\n\s*action ERRNO\(1\);", text)  # EPERM
    assert re.search(r"# invalid architecture action\n\s*action KILL_PROCESS;", text)
    allowed = {int(n) for n in re.findall(r'# filter for syscall "[^"]+" \((\d+)\)', text)}
    assert allowed, text[:500]
    assert allowed.isdisjoint(REFUSED), {REFUSED[n] for n in allowed & set(REFUSED)}


CHILD = """
import ctypes, errno, os, sys
from sandbox.runtime.confine import install_seccomp_filter
libc = ctypes.CDLL(None, use_errno=True)
install_seccomp_filter()
results = []
for number in (1000, 141, 206):  # a future number, setpriority, io_setup
    results.append((libc.syscall(number, 0, 0, 0), ctypes.get_errno()))
results.append((libc.syscall(39) == os.getpid(), 0))  # getpid, allowed
os.write(1, repr(results).encode() + b"\\n")
libc.syscall(0x40000000 | 39)  # getpid through the x32 ABI: killed here
os.write(1, b"still alive\\n")
"""


def test_confine_filter_refuses_unknown_calls_and_kills_the_x32_abi() -> None:
    completed = subprocess.run(
        [sys.executable, "-c", CHILD],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    lines = completed.stdout.splitlines()
    assert lines == [repr([(-1, 1), (-1, 1), (-1, 1), (True, 0)])], completed.stderr
    assert completed.returncode == -signal.SIGSYS, (completed.returncode, completed.stderr)
