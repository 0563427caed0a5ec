"""The fork server: a harness with everything imported, forked into each new sandbox.

Importing the emulator stack costs a sandbox ~0.4-0.7 s of CPU and building the emulator another
~0.2 s: more than a short episode. So one trusted process per pool (this module, `python -m
sandbox.backends.forkserver FD`) imports it all once and builds each emulator setting once, then
forks a copy for every sandbox. The copy steps inside a sandbox that bubblewrap has just built,
as `nsenter` would (`namespaces.join_sandbox`), and splits in two:

    supervisor   root, outside the sandbox's pid namespace: waits for the harness and writes
                 `{"harness_exit": N}` to the result pipe; nothing else
    harness      uid H, in the sandbox: the pre-imported `harness.serve` (one episode)
    policy       uid P, its own session and empty /tmp, priorities reset: exec's the policy
                 runner, which waits warm for its program

No untrusted byte ever reaches this process: it only reads spawn requests from its pool (over a
socketpair, with the pipe ends as SCM_RIGHTS), and a fork gets a copy of memory, nothing back.
When the pool goes away the socket closes and the server exits.

`isolate: false` (`--sandbox none`, trusted debugging only) skips the sandbox and the uid change.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import sys
import traceback
from typing import Any

from sandbox.runtime import harness, namespaces
from sandbox.runtime.lean_imports import import_ocatari

MAX_MESSAGE_BYTES = 1 << 16
FD_REQUEST, FD_RESULTS = 3, 4  # where a sandbox's two pipe ends sit in the harness
FD_POLICY_REQUEST, FD_POLICY_REPLY = 3, 4  # and the policy's, in the policy runner


def _move_fds(wanted: list[int]) -> None:
    """Put `wanted` at 3, 4, ... (inheritable) and close every other descriptor above 2."""
    parked = [fcntl.fcntl(fd, fcntl.F_DUPFD, 1000) for fd in wanted]  # clear of 3..N
    for target, fd in enumerate(parked, start=3):
        os.dup2(fd, target)
    os.closerange(3 + len(wanted), os.sysconf("SC_OPEN_MAX"))


def _start_policy(spec: dict[str, Any]) -> harness.PolicyProcess:
    """Fork the policy process (still privileged here) and let it confine itself and exec."""
    request_read, request_write = os.pipe()
    reply_read, reply_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            _move_fds([request_read, reply_write])
            if spec["isolate"]:
                namespaces.private_tmpfs("/tmp", 1 << 20)
            os.setsid()
            namespaces.reset_priorities()
            if spec["isolate"]:
                namespaces.drop_privileges(spec["policy_uid"], spec["policy_uid"])
            else:
                namespaces.prctl(namespaces.PR_SET_NO_NEW_PRIVS, 1)
            os.chdir("/")
            argv = [*spec["policy_argv"], str(FD_POLICY_REQUEST), str(FD_POLICY_REPLY)]
            os.execve(argv[0], argv, spec["policy_env"])
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(71)
    os.close(request_read)
    os.close(reply_write)
    return harness.PolicyProcess(pid, request_write, reply_read)


def _harness(spec: dict[str, Any], prepared: harness.PreparedEnvs) -> None:
    """The harness side of a new sandbox: fds 3 (request) and 4 (results) and 2 (stderr)."""
    policy = _start_policy(spec)
    if spec["isolate"]:
        namespaces.drop_privileges(spec["uid"], spec["uid"])
    os.setsid()
    harness.make_undumpable()
    if spec.get("cpu") is not None:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {int(spec["cpu"])})
    os.environ.clear()
    os.environ.update(spec["env"])
    with os.fdopen(FD_REQUEST, "rb") as request, os.fdopen(FD_RESULTS, "wb") as results:
        harness.serve(request, results, policy, prepared)


def _supervise(spec: dict[str, Any], prepared: harness.PreparedEnvs) -> None:
    """The forked copy: enter the sandbox, fork the harness, report how it ended."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if spec["isolate"]:
        for procs in spec["cgroup_procs"]:
            with open(procs, "w") as handle:
                handle.write(str(os.getpid()))
        namespaces.join_sandbox(spec["init_pid"])
    pid = os.fork()
    if pid == 0:
        try:
            _harness(spec, prepared)
            code = 0
        except BaseException:
            traceback.print_exc()
            code = 70
        finally:
            sys.stderr.flush()
        os._exit(code)
    os.close(FD_REQUEST)
    _, status = os.waitpid(pid, 0)
    line = json.dumps({"harness_exit": os.waitstatus_to_exitcode(status)}) + "\n"
    with contextlib.suppress(OSError):
        os.write(FD_RESULTS, line.encode())


def _spawn(spec: dict[str, Any], fds: list[int], prepared: harness.PreparedEnvs) -> int:
    if spec.get("prepare"):
        wanted = spec["prepare"]
        harness.prepare_env(
            prepared,
            wanted["game"],
            wanted["frameskip"],
            wanted["repeat_action_probability"],
            wanted["seeds"],
        )
    pid = os.fork()
    if pid == 0:
        try:
            request_read, results_write, stderr_write = fds
            os.dup2(stderr_write, 2)
            os.dup2(stderr_write, 1)
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            _move_fds([request_read, results_write])
            _supervise(spec, prepared)
            code = 0
        except BaseException:
            traceback.print_exc()
            code = 72
        os._exit(code)
    for fd in fds:
        os.close(fd)
    return pid


def serve_forever(control: socket.socket) -> None:
    prepared: harness.PreparedEnvs = {}
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the supervisors
    control.sendall(b'{"ready":true}')
    while True:
        message, fds, _, _ = socket.recv_fds(control, MAX_MESSAGE_BYTES, 3)
        if not message:
            return  # the pool is gone
        try:
            reply: dict[str, Any] = {"pid": _spawn(json.loads(message), fds, prepared)}
        except Exception as error:  # a bad setting, an emulator that fails to build
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            reply = {"error": f"{type(error).__name__}: {error}"}
        control.sendall(json.dumps(reply).encode())


def main() -> None:
    control = socket.socket(fileno=int(sys.argv[1]))
    import_ocatari()  # the expensive part, once
    serve_forever(control)


if __name__ == "__main__":
    main()
