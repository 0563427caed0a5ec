"""The policy zygote: a clean interpreter with the policy runner's imports done, forked into each
new sandbox as that sandbox's policy process.

Every episode needs a policy interpreter that nothing has touched: no other program's state,
nothing of the harness (a copy of the emulator would be a perfect simulator for a policy to
look ahead with). Exec'ing a fresh one costs ~50 ms of CPU per episode (interpreter start,
RestrictedPython, pyseccomp, orjson), which is a tenth of a short Pong episode. So one zygote
per fork server is exec'd once, with `PYTHONHASHSEED=0` like every policy interpreter, imports
what a policy interpreter imports (`policy_runner.preload`), and never runs untrusted code or
reads an untrusted byte: it only gets spawn requests from the fork server, one JSON line each
on a pipe, naming the policy's pipe ends among the fork server's descriptors, which it opens
through /proc (so it imports no `socket`, which a policy would then find loaded). For each it
forks a keeper:

    keeper   root, outside the sandbox's pid namespace: enters the sandbox's cgroup and its
             namespaces, forks the policy process, waits for it and writes how it ended
             (`{"exit": N, "cpu": S}`) to the harness's status pipe; nothing else
    policy   in the sandbox, under the policy uid, its own session and empty /tmp, priorities
             reset: `policy_runner.serve_episode`, which announces its pid (the harness is not
             its parent) and waits for its program

A policy forked from here has what an exec'd one would have after its imports; what it does
not have is its own address-space layout (ASLR is per exec), which matters to native exploits
only, and the policy can load no native code (seccomp forbids new executable memory).

`python -s -S -P -c "...; from sandbox.runtime.policy_zygote import main; main()" IN OUT`
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import traceback
from typing import Any

from sandbox.runtime import namespaces, policy_runner
from sandbox.runtime.constants import EMPTY_TMP_BYTES, MAX_MESSAGE_BYTES

POLICY_FDS = (3, 4)  # request (read), reply (write), as policy_runner.serve_episode takes them


def _policy(spec: dict[str, Any]) -> None:
    """The policy process, forked in the sandbox: confine its surroundings, then serve."""
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as an exec'd interpreter has
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if spec["isolate"]:
        namespaces.private_tmpfs("/tmp", EMPTY_TMP_BYTES)
    os.setsid()
    namespaces.reset_priorities()
    if spec["isolate"]:
        namespaces.drop_privileges(spec["policy_uid"], spec["policy_uid"])
    else:
        namespaces.prctl(namespaces.PR_SET_NO_NEW_PRIVS, 1)
    os.chdir("/")
    os.environ.clear()
    os.environ.update(spec["policy_env"])
    sys.argv = ["-c", *map(str, POLICY_FDS)]  # what an exec'd runner has
    view = spec.get("policy_view")
    if view:  # the interpreter as the sandbox shows it
        sys.executable = view["executable"]
    policy_runner.serve_episode(*POLICY_FDS, announce_pid=True)


def _keeper(spec: dict[str, Any], fds: list[int]) -> None:
    """Enter the sandbox, fork the policy, report how it ended."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    namespaces.move_fds(fds)  # and the zygote's pipes to the fork server closed
    request_read, reply_write, status_write = 3, 4, 5
    if spec["isolate"]:
        namespaces.enter_sandbox(spec["cgroup_procs"], spec["init_pid"])
    pid = os.fork()
    if pid == 0:
        try:
            # The status pipe stays with the keeper: nothing the policy does can forge its end.
            namespaces.move_fds([request_read, reply_write])
            _policy(spec)
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(71)
    os.close(request_read)
    os.close(reply_write)
    _, status, rusage = os.wait4(pid, 0)
    ended = {
        "exit": os.waitstatus_to_exitcode(status),
        "cpu": round(rusage.ru_utime + rusage.ru_stime, 6),
    }
    with contextlib.suppress(OSError):  # the harness may be gone already
        os.write(status_write, json.dumps(ended).encode() + b"\n")


def _spawn(spec: dict[str, Any], fds: list[int]) -> int:
    """Fork the keeper for one sandbox; `fds` (the policy's request and reply ends, the status
    pipe's write end) are this call's to close."""
    pid = namespaces.fork_running(lambda: _keeper(spec, fds), 72)
    for fd in fds:
        os.close(fd)
    return pid


def _open_ends(owner: int, fds: dict[str, int]) -> list[int]:
    """The policy's pipe ends, opened from the fork server's descriptor table."""
    modes = {"request": os.O_RDONLY, "reply": os.O_WRONLY, "status": os.O_WRONLY}
    opened: list[int] = []
    try:
        for name in ("request", "reply", "status"):
            opened.append(os.open(f"/proc/{owner}/fd/{int(fds[name])}", modes[name]))
    except BaseException:
        for fd in opened:
            os.close(fd)
        raise
    return opened


def serve_forever(requests: int, replies: int) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the keepers
    os.write(replies, b'{"ready":true}\n')
    buffer = b""
    while True:
        while b"\n" not in buffer:
            chunk = os.read(requests, MAX_MESSAGE_BYTES)
            if not chunk:
                return  # the fork server is gone
            buffer += chunk
        line, buffer = buffer.split(b"\n", 1)
        try:
            message = json.loads(line)
            fds = _open_ends(int(message["owner"]), message["fds"])
            reply: dict[str, Any] = {"pid": _spawn(message["spec"], fds)}
        except Exception as error:
            reply = {"error": f"{type(error).__name__}: {error}"}
        os.write(replies, json.dumps(reply).encode() + b"\n")


def main() -> None:
    # Like the fork server: a Ctrl-C or SIGTERM sent to the run's process group is not ours.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    requests, replies = int(sys.argv[1]), int(sys.argv[2])
    policy_runner.preload()
    serve_forever(requests, replies)
