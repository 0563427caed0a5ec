"""Renice the harness through "myself": setpriority(PRIO_PGRP or PRIO_USER, 0, 15) and
ioprio_set(IOPRIO_WHO_PGRP, 0, idle).

Round two found that a rule "who == 0 means the caller" lets these through, but for a process
group or a user 0 means the caller's group or uid, the harness included: it stayed reniced and
every later policy inherited it. Now the policy has a session, a process group and a uid of its
own, and the allowlist refuses setpriority and ioprio_set altogether. The policy then checks
its harness's nice value and raises the refusal.

attack: setpriority(PRIO_PGRP/PRIO_USER, 0, 15), ioprio_set(IOPRIO_WHO_PGRP, 0, ...)
family: process-split
layer: seccomp allowlist; own session, process group and uid [fixed here]
expect: error
checker: reject
"""
import ctypes
import os

SYS_IOPRIO_SET, IOPRIO_WHO_PGRP, IOPRIO_WHO_USER = 251, 2, 3
libc = ctypes.CDLL(None, use_errno=True)


# harness_pid(), filled in by the test (tests/adversarial/catalog.py FIND_HARNESS):
# @FIND_HARNESS@


def _harness_nice() -> int:
    with open(f"/proc/{harness_pid()}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[16])


def act(obs):
    refused = None
    for which in (os.PRIO_PGRP, os.PRIO_USER):
        try:
            os.setpriority(which, 0, 15)
        except OSError as error:
            refused = refused or error
    for who in (IOPRIO_WHO_PGRP, IOPRIO_WHO_USER):
        if libc.syscall(SYS_IOPRIO_SET, who, 0, (3 << 13) | 7) == 0:
            print("ESC" + "APED", "ioprio_set", who)
    if _harness_nice() != 0:
        print("ESC" + "APED", "the harness runs at nice", _harness_nice())
    raise refused or RuntimeError("setpriority went through")
