"""The harness's side of the policy process: start it, talk to it, and find out why it stopped.

The policy runner (sandbox/runtime/policy_runner.py) is untrusted: every byte it sends is
capped, parsed defensively and checked again here, every wait has a deadline, and the harness
never blocks on it (a policy that stops reading or floods its pipe cannot hang the harness).

The hot path is one observation out and one action back per step. The observation goes out
with a single write (the pipe almost always has room), and the reply is read before any poll:
on one core the woken policy often runs, and answers, before the harness gets the CPU back
(about half the steps, measured), and then the step costs the harness two system calls.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import time
from typing import Any

import orjson

from sandbox.runtime.protocol import Status

EXIT_GRACE_SECONDS = 1.0  # for a policy process that closed its pipe to finish exiting
REPLY_OVERHEAD_BYTES = 64 << 10  # room for a traceback beside the captured output
STATUS_BYTES = 256  # the keeper's one line: {"exit": N, "cpu": S}
# The observation crosses to the policy once per step: orjson encodes an object-heavy one
# (Space Invaders: ~40 objects) ~12x faster than the standard library (benchmarks/).
_OBS_OPTIONS = orjson.OPT_APPEND_NEWLINE


class ReplyReader:
    """Reads newline-framed replies from the policy with a deadline and a size cap."""

    def __init__(self, fd: int, cap_bytes: int) -> None:
        self.fd = fd
        self.cap_bytes = cap_bytes
        self.buffer = b""
        self.overflowed = False
        os.set_blocking(fd, False)  # read first, poll only when nothing has arrived yet
        self.poller = select.poll()
        self.poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)

    def read_line(self, timeout_seconds: float) -> bytes | None:
        """A line without its newline; None on timeout; b"" when the policy process is gone or
        sent more than `cap_bytes` without a newline (then `overflowed` is set)."""
        deadline: float | None = None
        while True:
            newline = self.buffer.find(b"\n")
            if newline >= 0:
                line, self.buffer = self.buffer[:newline], self.buffer[newline + 1 :]
                return line or b" "
            if len(self.buffer) > self.cap_bytes:
                self.overflowed = True
                return b""
            try:
                chunk = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                if deadline is None:
                    deadline = time.monotonic() + timeout_seconds
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self.poller.poll(remaining * 1000):
                    return None
                continue
            if not chunk:
                return b""
            self.buffer += chunk


class PolicyProcess:
    """The confined interpreter that runs one episode's policy (sandbox/runtime/policy_runner.py).

    Started before the episode is known, so its interpreter start-up is off the critical path;
    it waits for its setup message. Never reused: one process, one program, one episode.

    Two kinds: a child of the harness (`spawn`: docker, where the harness execs it and waits
    for it), or forked by the policy zygote (`forked`: bwrap, `--sandbox none`), whose pid the
    process announces in its first line and whose end its keeper reports on `status_fd`.
    """

    def __init__(
        self, pid: int | None, request_fd: int, reply_fd: int, status_fd: int | None = None
    ) -> None:
        self.pid = pid
        self._request_fd = request_fd
        os.set_blocking(request_fd, False)
        self._writable = select.poll()
        self._writable.register(request_fd, select.POLLOUT)
        self.reader = ReplyReader(reply_fd, REPLY_OVERHEAD_BYTES)
        self._status = ReplyReader(status_fd, STATUS_BYTES) if status_fd is not None else None
        self.rusage: Any = None
        self.ended_cpu_seconds: float | None = None  # from the keeper, once it has ended
        self.exit_status: int | None = None

    @classmethod
    def forked(cls, request_fd: int, reply_fd: int, status_fd: int) -> PolicyProcess:
        """One forked by the zygote: its pid is learnt from its first line (`learn_pid`)."""
        return cls(None, request_fd, reply_fd, status_fd)

    def learn_pid(self, timeout_seconds: float) -> bool:
        """Read the pid a forked policy process announces before anything untrusted runs in it
        (so its first line can be believed); False when it never came."""
        if self.pid is not None:
            return True
        line = self.reader.read_line(timeout_seconds)
        message = parse_reply(line) if line else None
        if isinstance(message, dict) and type(message.get("pid")) is int and message["pid"] > 0:
            self.pid = message["pid"]
            return True
        return False

    @classmethod
    def spawn(cls, argv: list[str], env: dict[str, str], user: int | None) -> PolicyProcess:
        """Start the runner as a child (docker, `--sandbox none`): argv gets the two pipe ends."""
        request_read, request_write = os.pipe()
        reply_read, reply_write = os.pipe()
        process = subprocess.Popen(
            [*argv, str(request_read), str(reply_write)],
            pass_fds=(request_read, reply_write),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            env=env,
            cwd="/",
            start_new_session=True,
            user=user,
            group=user,
            extra_groups=[] if user is not None else None,
        )
        os.close(request_read)
        os.close(reply_write)
        return cls(process.pid, request_write, reply_read)

    def set_output_cap(self, output_bytes: int) -> None:
        """What the policy may send in one message: its captured prints (JSON-escaped, up to 6
        bytes a character) plus a traceback. Counted here, not in the untrusted process."""
        self.reader.cap_bytes = 6 * output_bytes + REPLY_OVERHEAD_BYTES

    def send(self, message: Any, timeout_seconds: float) -> bool | None:
        """Write one message: True when written, False when the policy process has closed its
        end, None when it left the pipe full for `timeout_seconds` (it stopped reading, say
        after queueing replies ahead and going to sleep): a blocking write would hang here."""
        data = orjson.dumps(message, option=_OBS_OPTIONS)
        deadline: float | None = None
        try:
            while data:
                try:  # the pipe almost always has room: write first, poll only when full
                    data = data[os.write(self._request_fd, data) :]
                    continue
                except BlockingIOError:
                    pass
                if deadline is None:
                    deadline = time.monotonic() + timeout_seconds
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._writable.poll(remaining * 1000):
                    return None
        except OSError:  # BrokenPipeError, or the fd is gone
            return False
        return True

    def stop(self) -> None:
        """Stop talking to it, and kill it if we may (same uid: `--sandbox none`); otherwise
        the sandbox's teardown does."""
        if self.exit_status is None and self.pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.pid, signal.SIGKILL)
        fds = [self._request_fd, self.reader.fd] + ([self._status.fd] if self._status else [])
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)

    def exited_within(self, seconds: float) -> bool:
        """Whether the process ended within `seconds` (it is not signalled here): reaped, or
        reported by its keeper."""
        if self._status is not None:
            return self._keeper_reported(seconds)
        if self.pid is None:
            return False
        deadline = time.monotonic() + seconds
        while self.exit_status is None:
            pid, status, rusage = os.wait4(self.pid, os.WNOHANG)
            if pid:
                self.exit_status = os.waitstatus_to_exitcode(status)
                self.rusage = rusage
                break
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def _keeper_reported(self, seconds: float) -> bool:
        assert self._status is not None
        if self.exit_status is None:
            line = self._status.read_line(seconds)
            if not line:
                return False
            try:
                ended = json.loads(line)
                self.exit_status = int(ended["exit"])
                self.ended_cpu_seconds = float(ended["cpu"])
            except (ValueError, KeyError, TypeError):
                return False
        return True

    def cpu_seconds(self) -> float:
        """CPU time of the policy process: from its rusage once ended, else from /proc."""
        if self.ended_cpu_seconds is not None:
            return self.ended_cpu_seconds
        if self.rusage is not None:
            return float(self.rusage.ru_utime + self.rusage.ru_stime)
        if self.pid is None:
            return 0.0
        try:  # nanoseconds on the CPU; /proc/<pid>/stat counts in 10 ms ticks
            with open(f"/proc/{self.pid}/schedstat") as schedstat:
                return int(schedstat.read().split()[0]) / 1e9
        except (OSError, IndexError, ValueError):
            pass
        try:
            with open(f"/proc/{self.pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return 0.0

    def peak_memory_mb(self) -> float:
        """Peak resident memory of the policy interpreter (VmHWM; read before it is reaped)."""
        if self.pid is None:
            return 0.0
        try:
            with open(f"/proc/{self.pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        return round(int(line.split()[1]) / 1024, 2)
        except OSError:
            pass
        return 0.0

    def death_reason(self, cpu_seconds: int) -> tuple[Status, str]:
        """Why the process stopped talking: (status, message).

        Usually it died. One that closed its end of a pipe, or flooded it without a newline,
        but goes on running broke the protocol: it is never waited for (waiting would hang the
        harness); the sandbox's teardown kills it.
        """
        if self.reader.overflowed or not self.exited_within(EXIT_GRACE_SECONDS):
            what = (
                f"sent a message of more than {self.reader.cap_bytes} bytes"
                if self.reader.overflowed
                else "closed its pipe to the harness but kept running"
            )
            return Status.CRASHED, f"the policy process {what} and was stopped"
        code = self.exit_status or 0
        if code in (-signal.SIGXCPU, -signal.SIGKILL) and self.cpu_seconds() >= cpu_seconds - 0.5:
            return Status.TIMEOUT, f"the policy used its {cpu_seconds} s of CPU time"
        if code < 0:
            return Status.CRASHED, f"the policy process was killed by {signal.Signals(-code).name}"
        return Status.CRASHED, f"the policy process exited with code {code}"


def parse_reply(line: bytes) -> int | dict[str, Any]:
    """An action index or a message dict; anything else is a protocol violation. The bytes are
    untrusted: a policy can write whatever it likes to its end of the pipe."""
    if line.isdigit() and len(line) < 10:
        return int(line)
    try:
        message = json.loads(line)
    except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested a million deep
        return {"protocol": "the policy process sent an unreadable reply"}
    if type(message) is dict or type(message) is int:  # not bool, not a float
        return message
    return {"protocol": "the policy process sent a reply that is neither an action nor a message"}


def policy_argv(
    python: str,
    package_root: str,
    site_dirs: list[str],
    module: str = "sandbox.runtime.policy_runner",
) -> list[str]:
    """The policy interpreter's command line (the runner's, or the zygote's that forks it): no
    site, no user site, no environment-derived path; the runner's path set explicitly.

    This is what `python -I` gives, but not `-I` itself: -I implies -E, which ignores every
    PYTHON* variable, PYTHONHASHSEED included, and the episode must replay the same for the same
    seed (str hashes order sets). So: -s (no user site), -S (no site at all), -P (no script
    directory or cwd prepended to sys.path: the harness's /tmp never is sys.path[0]), and an
    environment cleared to PYTHONHASHSEED alone, so no other variable has anything to act on.
    tests/sandbox/test_hostile.py checks the resulting sys.flags and sys.path on both backends."""
    path = [package_root, *site_dirs]
    boot = f"import sys; sys.path[:0] = {path!r}; from {module} import main; main()"
    return [python, "-s", "-S", "-P", "-c", boot]
