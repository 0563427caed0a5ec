"""The trusted harness: owns the emulator, counts the reward, and plays the policy over a pipe.

Runs inside the sandbox (or, with `--sandbox none`, as a plain child process). It reads one JSON
request on stdin and writes one JSON line per finished episode on stdout. The policy runs in a
separate, confined process started afresh for every episode; it only ever sees observation
dicts and only ever sends back action indices, so it cannot touch the emulator or the score.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from sandbox.games import ACTION_ALPHABET, get_game
from sandbox.runtime.emulator import ale_of, make_env
from sandbox.runtime.observation import build_observation

STARTUP_SECONDS = 15.0  # interpreter start, imports and the policy's module body
END_SECONDS = 2.0
EXIT_GRACE_SECONDS = 1.0  # for a policy process that closed its pipe to finish exiting
MAX_REPLY_BYTES = 1 << 20
_PR_SET_DUMPABLE = 4
# Once per step: json.dumps with any non-default option builds a new encoder on every call.
_encode = json.JSONEncoder(separators=(",", ":")).encode


class ReplyReader:
    """Reads newline-framed replies from the policy with a deadline and a size cap."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = b""
        self.overflowed = False
        self.poller = select.poll()
        self.poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)

    def read_line(self, timeout_seconds: float) -> bytes | None:
        """A line without its newline; None on timeout; b"" when the policy process is gone or
        sent more than MAX_REPLY_BYTES without a newline (then `overflowed` is set)."""
        deadline = time.monotonic() + timeout_seconds
        while True:
            newline = self.buffer.find(b"\n")
            if newline >= 0:
                line, self.buffer = self.buffer[:newline], self.buffer[newline + 1 :]
                return line or b" "
            if len(self.buffer) > MAX_REPLY_BYTES:
                self.overflowed = True
                return b""
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.poller.poll(remaining * 1000):
                return None
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                return b""
            self.buffer += chunk


@dataclass
class TraceRecorder:
    """Every action and event; full observations only around events (see results.Trace)."""

    window_steps: int
    max_snapshots: int
    actions: list[str] = field(default_factory=list)
    rewards: list[tuple[int, float]] = field(default_factory=list)
    life_losses: list[int] = field(default_factory=list)
    snapshots: dict[int, dict[str, Any]] = field(default_factory=dict)
    truncated: bool = False

    def __post_init__(self) -> None:
        self.recent: deque[tuple[int, dict[str, Any], int, float]] = deque(maxlen=self.window_steps)

    def record(self, step: int, obs: dict[str, Any], action: int, reward: float, event: bool):
        self.actions.append(ACTION_ALPHABET[action])
        self.recent.append((step, obs, action, reward))
        if reward:
            self.rewards.append((step, reward))
        if event:
            self.flush()

    def life_lost(self, step: int) -> None:
        self.life_losses.append(step)

    def flush(self, final_obs: dict[str, Any] | None = None, final_step: int = 0) -> None:
        """Keep the recent window; the episode's last window and final observation always fit,
        because events may only use the room left after reserving space for them."""
        final = final_obs is not None
        room = self.max_snapshots if final else self.max_snapshots - self.window_steps - 1
        for step, obs, action, reward in self.recent:
            if step in self.snapshots:
                continue
            if len(self.snapshots) >= room:
                self.truncated = True
                break
            self.snapshots[step] = {"step": step, "obs": obs, "action": action, "reward": reward}
        self.recent.clear()
        if final and final_step not in self.snapshots and len(self.snapshots) < room:
            self.snapshots[final_step] = {
                "step": final_step,
                "obs": final_obs,
                "action": None,
                "reward": 0.0,
            }

    def to_json(self) -> dict[str, Any]:
        return {
            "actions": "".join(self.actions),
            "rewards": self.rewards,
            "life_losses": self.life_losses,
            "snapshots": [self.snapshots[step] for step in sorted(self.snapshots)],
            "truncated": self.truncated,
        }


class PolicyProcess:
    """One confined interpreter running policy_runner for one episode."""

    def __init__(self, setup: dict[str, Any]) -> None:
        request_read, self._request_write = os.pipe()
        self._reply_read, reply_write = os.pipe()
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
        env = {
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": package_root,
            "PYTHONHASHSEED": "0",  # same program + same seed => same episode
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-s",
                "-m",
                "sandbox.runtime.policy_runner",
                str(request_read),
                str(reply_write),
            ],
            pass_fds=(request_read, reply_write),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            # The runner's own start-up errors reach our stderr (the host keeps its tail);
            # it points fd 1 and 2 at /dev/null before any policy code runs.
            env=env,
            cwd="/tmp" if os.path.isdir("/tmp") else "/",
        )
        os.close(request_read)
        os.close(reply_write)
        os.set_blocking(self._request_write, False)
        self._writable = select.poll()
        self._writable.register(self._request_write, select.POLLOUT)
        self.reader = ReplyReader(self._reply_read)
        self.rusage: Any = None
        self.exit_status: int | None = None
        self.send(setup, STARTUP_SECONDS)

    def send(self, message: Any, timeout_seconds: float) -> bool | None:
        """Write one message: True when written, False when the policy process has closed its
        end, None when it left the pipe full for `timeout_seconds` (it stopped reading, say
        after queueing replies ahead and going to sleep): a blocking write would hang here."""
        data = (_encode(message) + "\n").encode()
        deadline = time.monotonic() + timeout_seconds
        try:
            while data:
                try:  # the pipe almost always has room: write first, poll only when full
                    data = data[os.write(self._request_write, data) :]
                    continue
                except BlockingIOError:
                    pass
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._writable.poll(remaining * 1000):
                    return None
        except OSError:  # BrokenPipeError, or the fd is gone
            return False
        return True

    def kill(self) -> None:
        if self.exit_status is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()

    def reap(self) -> None:
        """Wait for the process and keep its resource usage (CPU time, peak memory)."""
        if self.exit_status is None:
            _, status, rusage = os.wait4(self.process.pid, 0)
            self.process.returncode = os.waitstatus_to_exitcode(status)
            self.exit_status = self.process.returncode
            self.rusage = rusage
        for fd in (self._request_write, self._reply_read):
            with contextlib.suppress(OSError):
                os.close(fd)

    def peak_memory_mb(self) -> float:
        """Peak resident memory of the policy interpreter (VmHWM restarts at exec, unlike
        ru_maxrss, which would report the harness's size at fork time)."""
        try:
            with open(f"/proc/{self.process.pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        return round(int(line.split()[1]) / 1024, 2)
        except OSError:
            pass
        return 0.0

    def _exited_within(self, seconds: float) -> bool:
        """Reap the process if it exits within `seconds` (it is not killed here)."""
        deadline = time.monotonic() + seconds
        while self.exit_status is None:
            pid, status, rusage = os.wait4(self.process.pid, os.WNOHANG)
            if pid:
                self.process.returncode = os.waitstatus_to_exitcode(status)
                self.exit_status = self.process.returncode
                self.rusage = rusage
                break
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def death_reason(self, cpu_seconds: int) -> tuple[str, str]:
        """Why the process stopped talking: (status, message).

        Usually it died. One that closed its end of a pipe, or flooded it without a newline,
        but goes on running broke the protocol: it is killed, never waited for (waiting would
        hang the harness, and with it every later episode of this worker).
        """
        if self.reader.overflowed or not self._exited_within(EXIT_GRACE_SECONDS):
            self.kill()
            self.reap()
            what = (
                f"sent a reply of more than {MAX_REPLY_BYTES} bytes"
                if self.reader.overflowed
                else "closed its pipe to the harness but kept running"
            )
            return "crashed", f"the policy process {what} and was killed"
        self.reap()
        code = self.exit_status or 0
        cpu = self.rusage.ru_utime + self.rusage.ru_stime if self.rusage else 0.0
        if code in (-signal.SIGXCPU, -signal.SIGKILL) and cpu >= cpu_seconds - 0.5:
            return "timeout", f"the policy used its {cpu_seconds} s of CPU time"
        if code < 0:
            name = signal.Signals(-code).name
            return "crashed", f"the policy process was killed by {name}"
        return "crashed", f"the policy process exited with code {code}"


def _parse_reply(line: bytes) -> int | dict[str, Any]:
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


def play_episode(env: Any, seed: int, request: dict[str, Any]) -> dict[str, Any]:
    game = get_game(request["game"])
    limits = request["limits"]
    max_steps = int(request["env"]["max_steps"])
    n_actions = len(game.actions)
    list_categories = frozenset(game.list_categories)
    ale = ale_of(env)
    started = time.monotonic()
    wall_deadline = started + float(limits["episode_wall_seconds"])
    act_seconds = float(limits["act_seconds"])
    recorder = TraceRecorder(int(limits["trace_window_steps"]), int(limits["trace_snapshots"]))

    env.reset(seed=seed)
    lives = ale.lives() if game.has_lives else None
    obs = build_observation(env.objects, list_categories, lives, at_reset=True)
    policy = PolicyProcess(
        {
            "source": request["source"],
            "restricted": bool(request["restricted"]),
            "seed": seed,
            "n_actions": n_actions,
            "memory_mb": int(limits["memory_mb"]),
            "cpu_seconds": int(limits["episode_cpu_seconds"]),
            "output_bytes": int(limits["output_bytes"]),
        }
    )
    status, error, output = "ok", None, ""
    total, step = 0.0, 0

    reply = policy.reader.read_line(STARTUP_SECONDS)
    if reply is None:
        status, error = "timeout", f"loading the module took longer than {STARTUP_SECONDS:g} s"
    elif reply == b"":
        status, error = policy.death_reason(int(limits["episode_cpu_seconds"]))
    else:
        message = _parse_reply(reply)
        if not (isinstance(message, dict) and message.get("ready")):
            status, error, output = _failure(message, step, n_actions, game.actions)

    while status == "ok" and step < max_steps:
        deadline = min(time.monotonic() + act_seconds, wall_deadline)
        sent = policy.send(obs, max(deadline - time.monotonic(), 0.0))
        if sent is False:
            status, error = policy.death_reason(int(limits["episode_cpu_seconds"]))
            break
        reply = None if sent is None else policy.reader.read_line(deadline - time.monotonic())
        if reply is None:
            status = "timeout"
            if time.monotonic() >= wall_deadline:
                error = f"the episode exceeded {limits['episode_wall_seconds']:g} s of wall time"
            elif sent is None:
                error = f"the policy process stopped reading observations at step {step}"
            else:
                error = f"act() did not return within {act_seconds:g} s at step {step}"
            break
        if reply == b"":
            status, error = policy.death_reason(int(limits["episode_cpu_seconds"]))
            break
        action = _parse_reply(reply)
        if isinstance(action, int) and not 0 <= action < n_actions:
            action = {"invalid": str(action)}  # the runner checks this too, but it is untrusted
        if not isinstance(action, int):
            status, error, output = _failure(action, step, n_actions, game.actions)
            break
        _, reward, truncated, terminated, _ = env.step(action)
        total += reward
        life_lost = False
        if lives is not None:
            now = ale.lives()
            if now < lives:
                life_lost = True
                recorder.life_lost(step)
            lives = now
        recorder.record(step, obs, action, float(reward), bool(reward) or life_lost)
        step += 1
        obs = build_observation(env.objects, list_categories, lives)
        if terminated or truncated:
            break
        if time.monotonic() >= wall_deadline:
            status = "timeout"
            error = f"the episode exceeded {limits['episode_wall_seconds']:g} s of wall time"
            break

    if status == "ok" and policy.send({"end": True}, END_SECONDS):
        reply = policy.reader.read_line(END_SECONDS)
        message = _parse_reply(reply) if reply else None
        if isinstance(message, dict):
            output = str(message.get("output", ""))
    peak_memory_mb = policy.peak_memory_mb()
    policy.kill()
    policy.reap()
    recorder.flush(final_obs=obs, final_step=step)
    rusage = policy.rusage
    return {
        "seed": seed,
        "status": status,
        "return": total,
        "length": step,
        "error": _clean_text(error),
        "wall_seconds": round(time.monotonic() - started, 4),
        "policy_cpu_seconds": round(rusage.ru_utime + rusage.ru_stime, 4) if rusage else 0.0,
        "policy_peak_memory_mb": peak_memory_mb,
        "output": _clean_text(output),
        "trace": recorder.to_json(),
    }


def _clean_text(text: str | None) -> str | None:
    """Text from the policy as valid UTF-8: lone surrogates ("\\ud800", which JSON carries but
    UTF-8 cannot) become backslash escapes. Left in, they broke every consumer that encodes the
    result, the LLM client building the next prompt from this episode's feedback first."""
    if text is None:
        return None
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _failure(
    message: Any, step: int, n_actions: int, meanings: tuple[str, ...]
) -> tuple[str, str, str]:
    """Map a non-action reply to (status, error, output)."""
    if not isinstance(message, dict):
        return "crashed", "the policy process sent an unexpected reply", ""
    output = str(message.get("output", ""))
    if "invalid" in message:
        valid = ", ".join(f"{i} {name}" for i, name in enumerate(meanings))
        return (
            "invalid_action",
            f"act() returned {message['invalid']} at step {step}; it must return an int "
            f"action index in 0..{n_actions - 1} ({valid})",
            output,
        )
    if "memory" in message:
        return "memory", f"{message['memory']} (step {step})", output
    if "error" in message:
        return "error", f"{message['error']}".rstrip() + f"\n(at step {step})", output
    return "crashed", str(message.get("protocol", "the policy process broke the protocol")), output


def _make_undumpable() -> None:
    """The policy shares our uid: keep it out of /proc/<harness>/{mem,fd,environ}."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    except OSError:
        pass


def main() -> None:
    results = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the result stream
    request = json.loads(sys.stdin.buffer.read(1 << 22))
    _make_undumpable()
    if request.get("cpu") is not None:
        with contextlib.suppress(OSError):  # a CPU this sandbox may not use: run unpinned
            os.sched_setaffinity(0, {int(request["cpu"])})
    env = make_env(
        request["game"], request["env"]["frameskip"], request["env"]["repeat_action_probability"]
    )
    try:
        for seed in request["seeds"]:
            episode = play_episode(env, int(seed), request)
            results.write(json.dumps(episode, separators=(",", ":")) + "\n")
    finally:
        env.close()
    results.write(json.dumps({"done": True}) + "\n")


if __name__ == "__main__":
    main()
