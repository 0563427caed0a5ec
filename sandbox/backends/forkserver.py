"""The fork server: a harness with everything imported, forked into each new sandbox.

Importing the emulator stack costs a sandbox ~0.4-0.7 s of CPU and building the emulator another
~0.2 s: more than a short episode. So one trusted process per pool (this module, `python -m
sandbox.backends.forkserver FD`) imports it all once and builds each emulator setting once, then
forks a copy for every sandbox. The copy steps inside a sandbox that bubblewrap has just built,
as `nsenter` would (`namespaces.join_sandbox`), and splits in two:

    supervisor   root, outside the sandbox's pid namespace: waits for the harness and writes
                 `{"harness_exit": N}` to the result pipe; nothing else
    harness      uid H, in the sandbox: the pre-imported `harness.serve` (one episode)

The policy process does not come from here: its interpreter must hold nothing of the harness
(a copy of the emulator would let a policy look ahead). This server exec's one policy zygote
at start (sandbox/runtime/policy_zygote.py), before importing the emulator stack, and for each
sandbox has it fork a policy process into the same sandbox (uid P, its own session and empty
/tmp, priorities reset), whose pipes' other ends go to the harness.

No untrusted byte ever reaches this process: it only reads spawn requests from its pool (over a
socketpair, with the pipe ends as SCM_RIGHTS), and a fork gets a copy of memory, nothing back.
When the pool goes away the socket closes and the server exits.

`isolate: false` (`--sandbox none`, trusted debugging only) skips the sandbox and the uid change.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from typing import Any

from sandbox.runtime import harness, namespaces
from sandbox.runtime.constants import MAX_MESSAGE_BYTES
from sandbox.runtime.lean_imports import import_ocatari

FD_REQUEST, FD_RESULTS = 3, 4  # where a sandbox's two pipe ends sit in the harness
FD_POLICY = (5, 6, 7)  # and the harness's ends of the policy's request, reply, status pipes
POLICY_ENV = {"PYTHONHASHSEED": "0"}  # same program + same seed => same episode


class Zygote:
    """The policy zygote (sandbox/runtime/policy_zygote.py), exec'd once by this server and
    spoken to over two pipes, one JSON line each way per spawn."""

    def __init__(self) -> None:
        import site

        their_requests, self._requests = os.pipe()
        self._replies, their_replies = os.pipe()
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        argv = harness.policy_argv(
            sys.executable, package_root, site.getsitepackages(), "sandbox.runtime.policy_zygote"
        )
        self.process = subprocess.Popen(
            [*argv, str(their_requests), str(their_replies)],
            pass_fds=(their_requests, their_replies),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            env=dict(POLICY_ENV),
            cwd="/",
        )
        os.close(their_requests)
        os.close(their_replies)
        self._buffer = b""
        if self._reply() != {"ready": True}:
            raise RuntimeError("the policy zygote did not start")

    def _reply(self) -> dict[str, Any]:
        while b"\n" not in self._buffer:
            chunk = os.read(self._replies, MAX_MESSAGE_BYTES)
            if not chunk:
                raise RuntimeError("the policy zygote is gone")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        reply = json.loads(line)
        return reply if isinstance(reply, dict) else {}

    def spawn(self, spec: dict[str, Any], fds: list[int]) -> None:
        """Have the zygote fork a keeper and a policy process for the sandbox in `spec`, with
        these ends of the policy's request, reply and status pipes (still ours to close: the
        zygote has opened its own by the time this returns)."""
        wanted = ("isolate", "init_pid", "cgroup_procs", "policy_uid", "policy_view")
        request = {
            "spec": {**{key: spec[key] for key in wanted if key in spec}, "policy_env": POLICY_ENV},
            "owner": os.getpid(),
            "fds": dict(zip(("request", "reply", "status"), fds, strict=True)),
        }
        os.write(self._requests, json.dumps(request).encode() + b"\n")
        reply = self._reply()
        if "pid" not in reply:
            raise RuntimeError(f"the policy zygote refused: {reply.get('error', reply)}")


def _harness(spec: dict[str, Any], prepared: harness.PreparedEnvs) -> None:
    """The harness side of a new sandbox: fds 3 (request) and 4 (results) and 2 (stderr), and
    5-7 its ends of the pipes to the policy process the zygote forked for this sandbox."""
    policy = harness.PolicyProcess.forked(*FD_POLICY)
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
        namespaces.enter_sandbox(spec["cgroup_procs"], spec["init_pid"])
    pid = namespaces.fork_running(lambda: _harness(spec, prepared), 70)
    for fd in (FD_REQUEST, *FD_POLICY):
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    line = json.dumps({"harness_exit": os.waitstatus_to_exitcode(status)}) + "\n"
    with contextlib.suppress(OSError):
        os.write(FD_RESULTS, line.encode())


def _spawn(
    spec: dict[str, Any], fds: list[int], prepared: harness.PreparedEnvs, zygote: Zygote
) -> int:
    """A new sandbox's supervisor (and, through it, harness) and policy process; `fds` (the
    sandbox's request, results and stderr pipe ends) are this call's to close."""
    try:
        if spec.get("prepare"):
            wanted = spec["prepare"]
            harness.prepare_env(
                prepared,
                wanted["game"],
                wanted["frameskip"],
                wanted["repeat_action_probability"],
                wanted["seeds"],
            )
        return _fork_sandbox(spec, fds, prepared, zygote)
    finally:
        for fd in fds:
            os.close(fd)


def _fork_sandbox(
    spec: dict[str, Any], fds: list[int], prepared: harness.PreparedEnvs, zygote: Zygote
) -> int:
    request_read, request_write = os.pipe()  # the policy's: harness -> policy
    reply_read, reply_write = os.pipe()  # policy -> harness
    status_read, status_write = os.pipe()  # keeper -> harness: how the policy ended
    try:
        zygote.spawn(spec, [request_read, reply_write, status_write])

        def supervisor() -> None:
            sandbox_request, results_write, stderr_write = fds
            os.dup2(stderr_write, 2)
            os.dup2(stderr_write, 1)
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            namespaces.move_fds(
                [sandbox_request, results_write, request_write, reply_read, status_read]
            )
            _supervise(spec, prepared)

        return namespaces.fork_running(supervisor, 72)
    finally:
        for fd in (request_read, request_write, reply_read, reply_write, status_read, status_write):
            os.close(fd)


def serve_forever(control: socket.socket, zygote: Zygote) -> None:
    prepared: harness.PreparedEnvs = {}
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the supervisors
    control.sendall(b'{"ready":true}')
    while True:
        message, fds, _, _ = socket.recv_fds(control, MAX_MESSAGE_BYTES, 3)
        if not message:
            return  # the pool is gone
        try:
            reply: dict[str, Any] = {"pid": _spawn(json.loads(message), fds, prepared, zygote)}
        except Exception as error:  # a bad setting, an emulator that fails to build
            reply = {"error": f"{type(error).__name__}: {error}"}
        control.sendall(json.dumps(reply).encode())


def ignore_stop_signals() -> None:
    """A terminal's Ctrl-C reaches the whole foreground process group, a service manager's
    SIGTERM the whole cgroup: this server (and the zygote) must outlive them while the run
    finishes its episodes in flight. They end when the run closes their channel."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def main() -> None:
    ignore_stop_signals()
    control = socket.socket(fileno=int(sys.argv[1]))
    zygote = Zygote()  # its own interpreter: it never sees what this one imports next
    import_ocatari()  # the expensive part, once
    serve_forever(control, zygote)


if __name__ == "__main__":
    main()
