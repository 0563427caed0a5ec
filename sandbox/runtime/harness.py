"""The trusted harness: owns the emulator, counts the reward, and plays the policy over a pipe.

One harness plays exactly one episode in one sandbox, then the sandbox is torn down. It is
started warm (imports done, emulator built, the policy's interpreter already running and waiting
for its program), says `{"ready": true}`, reads one `EpisodeSpec`, plays, writes one
`{"episode": ...}` line (sandbox/runtime/protocol.py). The policy runs in a separate, confined
process with a uid of its own; it only ever sees observation dicts and only ever sends back
action indices, so it cannot touch the emulator or the score. The harness cannot signal it (the
uids differ): a policy that misbehaves is left alone, and the sandbox's teardown kills it.

Two ways in: `serve()` from the fork server (bwrap: the harness is forked, pre-imported, into a
fresh sandbox), and `main()`, a process of its own (docker, `--sandbox none`).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import orjson

from sandbox.games import ACTION_ALPHABET, Game, get_game
from sandbox.runtime.emulator import ResetSnapshot, ale_of, make_env, reset, take_snapshot
from sandbox.runtime.observation import build_observation
from sandbox.runtime.protocol import EpisodeSpec, Status

STARTUP_SECONDS = 15.0  # the policy's interpreter start, imports and module body
END_SECONDS = 2.0
EXIT_GRACE_SECONDS = 1.0  # for a policy process that closed its pipe to finish exiting
MAX_REQUEST_BYTES = 1 << 22
REPLY_OVERHEAD_BYTES = 64 << 10  # room for a traceback beside the captured output
_PR_SET_DUMPABLE = 4
# The observation crosses to the policy once per step: orjson encodes an object-heavy one
# (Space Invaders: ~40 objects) ~20x faster than the standard library (benchmarks/).
_OBS_OPTIONS = orjson.OPT_APPEND_NEWLINE


@dataclass
class PreparedEmulator:
    """An emulator built ahead for one setting, with snapshots of its reset for some seeds."""

    env: Any
    snapshots: dict[int, ResetSnapshot] = field(default_factory=dict)


PreparedEnvs = dict[tuple[str, int, float], PreparedEmulator]


class ReplyReader:
    """Reads newline-framed replies from the policy with a deadline and a size cap."""

    def __init__(self, fd: int, cap_bytes: int) -> None:
        self.fd = fd
        self.cap_bytes = cap_bytes
        self.buffer = b""
        self.overflowed = False
        self.poller = select.poll()
        self.poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)

    def read_line(self, timeout_seconds: float) -> bytes | None:
        """A line without its newline; None on timeout; b"" when the policy process is gone or
        sent more than `cap_bytes` without a newline (then `overflowed` is set)."""
        deadline = time.monotonic() + timeout_seconds
        while True:
            newline = self.buffer.find(b"\n")
            if newline >= 0:
                line, self.buffer = self.buffer[:newline], self.buffer[newline + 1 :]
                return line or b" "
            if len(self.buffer) > self.cap_bytes:
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
    """The confined interpreter that runs one episode's policy (sandbox/runtime/policy_runner.py).

    Started before the episode is known, so its interpreter start-up is off the critical path;
    it waits for its setup message. Never reused: one process, one program, one episode.
    """

    def __init__(self, pid: int, request_fd: int, reply_fd: int) -> None:
        self.pid = pid
        self._request_fd = request_fd
        os.set_blocking(request_fd, False)
        self._writable = select.poll()
        self._writable.register(request_fd, select.POLLOUT)
        self.reader = ReplyReader(reply_fd, REPLY_OVERHEAD_BYTES)
        self.rusage: Any = None
        self.exit_status: int | None = None

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
        deadline = time.monotonic() + timeout_seconds
        try:
            while data:
                try:  # the pipe almost always has room: write first, poll only when full
                    data = data[os.write(self._request_fd, data) :]
                    continue
                except BlockingIOError:
                    pass
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._writable.poll(remaining * 1000):
                    return None
        except OSError:  # BrokenPipeError, or the fd is gone
            return False
        return True

    def stop(self) -> None:
        """Stop talking to it, and kill it if we may (same uid: `--sandbox none`); otherwise
        the sandbox's teardown does."""
        if self.exit_status is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.pid, signal.SIGKILL)
        for fd in (self._request_fd, self.reader.fd):
            with contextlib.suppress(OSError):
                os.close(fd)

    def exited_within(self, seconds: float) -> bool:
        """Reap the process if it exits within `seconds` (it is not signalled here)."""
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

    def cpu_seconds(self) -> float:
        """CPU time of the policy process: from its rusage once reaped, else from /proc."""
        if self.rusage is not None:
            return float(self.rusage.ru_utime + self.rusage.ru_stime)
        try:
            with open(f"/proc/{self.pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return 0.0

    def peak_memory_mb(self) -> float:
        """Peak resident memory of the policy interpreter (VmHWM; read before it is reaped)."""
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


@dataclass
class Episode:
    """One episode being played: what the harness knows so far."""

    spec: EpisodeSpec
    game: Game
    env: Any
    policy: PolicyProcess
    started: float = field(default_factory=time.monotonic)
    status: Status = Status.OK
    error: str | None = None
    output: str = ""
    episode_return: float = 0.0
    step: int = 0
    step_capped: bool = False

    def __post_init__(self) -> None:
        limits = self.spec.limits
        self.wall_deadline = self.started + limits.episode_wall_seconds
        self.recorder = TraceRecorder(limits.trace_window_steps, limits.trace_snapshots)
        self.ale = ale_of(self.env)

    def fail(self, status: Status, error: str | None, output: str = "") -> None:
        self.status, self.error, self.output = status, error, output

    def fail_from_reply(self, message: Any) -> None:
        """A non-action reply: the policy's error, an invalid action, a protocol breach."""
        if not isinstance(message, dict):
            self.fail(Status.CRASHED, "the policy process sent an unexpected reply")
            return
        output = str(message.get("output", ""))
        step, actions = self.step, self.game.actions
        if "invalid" in message:
            valid = ", ".join(f"{i} {name}" for i, name in enumerate(actions))
            self.fail(
                Status.INVALID_ACTION,
                f"act() returned {message['invalid']} at step {step}; it must return an int "
                f"action index in 0..{len(actions) - 1} ({valid})",
                output,
            )
        elif "memory" in message:
            self.fail(Status.MEMORY, f"{message['memory']} (step {step})", output)
        elif "error" in message:
            self.fail(Status.ERROR, f"{message['error']}".rstrip() + f"\n(at step {step})", output)
        else:
            protocol = message.get("protocol", "the policy process broke the protocol")
            self.fail(Status.CRASHED, str(protocol), output)

    def policy_died(self) -> None:
        self.fail(*self.policy.death_reason(self.spec.limits.episode_cpu_seconds))


def _start_policy(episode: Episode) -> None:
    """Hand the program to the waiting policy process and wait until its module has loaded."""
    spec, policy = episode.spec, episode.policy
    policy.set_output_cap(spec.limits.output_bytes)
    setup = {
        "source": spec.source,
        "restricted": spec.restricted,
        "seed": spec.seed,
        "n_actions": len(episode.game.actions),
        "memory_mb": spec.limits.memory_mb,
        "cpu_seconds": spec.limits.episode_cpu_seconds,
        "output_bytes": spec.limits.output_bytes,
    }
    if policy.send(setup, STARTUP_SECONDS) is not True:
        episode.policy_died()
        return
    reply = policy.reader.read_line(STARTUP_SECONDS)
    if reply is None:
        episode.fail(Status.TIMEOUT, f"loading the module took longer than {STARTUP_SECONDS:g} s")
    elif reply == b"":
        episode.policy_died()
    else:
        message = _parse_reply(reply)
        if not (isinstance(message, dict) and message.get("ready")):
            episode.fail_from_reply(message)


def _ask_action(episode: Episode, obs: dict[str, Any]) -> int | None:
    """Send the observation, read the action; None when the episode ended instead."""
    limits, policy, step = episode.spec.limits, episode.policy, episode.step
    deadline = min(time.monotonic() + limits.act_seconds, episode.wall_deadline)
    sent = policy.send(obs, max(deadline - time.monotonic(), 0.0))
    if sent is False:
        episode.policy_died()
        return None
    reply = None if sent is None else policy.reader.read_line(deadline - time.monotonic())
    if reply is None:
        if time.monotonic() >= episode.wall_deadline:
            error = f"the episode exceeded {limits.episode_wall_seconds:g} s of wall time"
        elif sent is None:
            error = f"the policy process stopped reading observations at step {step}"
        else:
            error = f"act() did not return within {limits.act_seconds:g} s at step {step}"
        episode.fail(Status.TIMEOUT, error)
        return None
    if reply == b"":
        episode.policy_died()
        return None
    action = _parse_reply(reply)
    if isinstance(action, int) and not 0 <= action < len(episode.game.actions):
        action = {"invalid": str(action)}  # the runner checks this too, but it is untrusted
    if not isinstance(action, int):
        episode.fail_from_reply(action)
        return None
    return action


def _play_steps(episode: Episode, obs: dict[str, Any]) -> dict[str, Any]:
    """The step loop; returns the last observation (for the trace)."""
    env, ale, recorder = episode.env, episode.ale, episode.recorder
    list_categories = frozenset(episode.game.list_categories)
    lives = ale.lives() if episode.game.has_lives else None
    max_steps = episode.spec.max_steps
    while episode.step < max_steps:
        action = _ask_action(episode, obs)
        if action is None:
            return obs
        _, reward, terminated, truncated, _ = env.step(action)
        episode.episode_return += reward
        life_lost = False
        if lives is not None:
            now = ale.lives()
            if now < lives:
                life_lost = True
                recorder.life_lost(episode.step)
            lives = now
        recorder.record(episode.step, obs, action, float(reward), bool(reward) or life_lost)
        episode.step += 1
        obs = build_observation(env.objects, list_categories, lives)
        if terminated or truncated:
            return obs
        if time.monotonic() >= episode.wall_deadline:
            limit = episode.spec.limits.episode_wall_seconds
            episode.fail(Status.TIMEOUT, f"the episode exceeded {limit:g} s of wall time")
            return obs
    episode.step_capped = True
    return obs


def _collect_output(episode: Episode) -> None:
    """Ask a clean policy for what it printed. Nobody waits for it to exit: the sandbox's
    teardown ends it."""
    if episode.status == Status.OK and episode.policy.send({"end": True}, END_SECONDS):
        reply = episode.policy.reader.read_line(END_SECONDS)
        message = _parse_reply(reply) if reply else None
        if isinstance(message, dict):
            episode.output = str(message.get("output", ""))


def play_episode(
    emulator: PreparedEmulator, spec: EpisodeSpec, policy: PolicyProcess
) -> dict[str, Any]:
    """Play one episode of `spec` with the waiting `policy`; the result as JSON data."""
    game = get_game(spec.game)
    env = emulator.env
    harness_cpu = time.process_time()
    episode = Episode(spec, game, env, policy)
    reset(env, spec.seed, emulator.snapshots)
    lives = episode.ale.lives() if game.has_lives else None
    obs = build_observation(env.objects, frozenset(game.list_categories), lives, at_reset=True)
    _start_policy(episode)
    if episode.status == Status.OK:
        obs = _play_steps(episode, obs)
    _collect_output(episode)
    peak_memory_mb = policy.peak_memory_mb()  # read while it runs: its /proc entry is then gone
    cpu_seconds = policy.cpu_seconds()
    policy.stop()
    episode.recorder.flush(final_obs=obs, final_step=episode.step)
    return {
        "seed": spec.seed,
        "status": str(episode.status),
        "return": episode.episode_return,
        "length": episode.step,
        "step_capped": episode.step_capped and episode.status == Status.OK,
        "error": _clean_text(episode.error),
        "wall_seconds": round(time.monotonic() - episode.started, 4),
        "policy_cpu_seconds": round(cpu_seconds, 4),
        "harness_cpu_seconds": round(time.process_time() - harness_cpu, 4),
        "policy_peak_memory_mb": peak_memory_mb,
        "output": _clean_text(_cap_output(episode.output, spec.limits.output_bytes)),
        "trace": episode.recorder.to_json(),
    }


def _cap_output(text: str, output_bytes: int) -> str:
    """The policy caps its own prints, but it is untrusted: cap them again here."""
    if len(text) <= output_bytes + 200:
        return text
    return text[:output_bytes] + f"\n...[{len(text) - output_bytes} more characters dropped]"


def _clean_text(text: str | None) -> str | None:
    """Text from the policy as valid UTF-8: lone surrogates ("\\ud800", which JSON carries but
    UTF-8 cannot) become backslash escapes. Left in, they broke every consumer that encodes the
    result, the LLM client building the next prompt from this episode's feedback first."""
    if text is None:
        return None
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def make_undumpable() -> None:
    """Keep the harness out of /proc/<harness>/{mem,fd,environ} for anyone but root."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    except OSError:
        pass


def prepare_env(
    prepared: PreparedEnvs, game: str, frameskip: int, sticky: float, seeds: list[int] | None = None
) -> PreparedEmulator:
    """The emulator for this setting, built once and kept (a fork inherits it, ROM loaded),
    with reset snapshots for `seeds`."""
    key = (get_game(game).name, int(frameskip), float(sticky))
    if key not in prepared:
        prepared[key] = PreparedEmulator(make_env(*key))
    emulator = prepared[key]
    for seed in seeds or []:
        if seed not in emulator.snapshots:
            emulator.snapshots[seed] = take_snapshot(emulator.env, seed)
    return emulator


def serve(request: BinaryIO, results: BinaryIO, policy: PolicyProcess, prepared: PreparedEnvs):
    """Say ready, read one episode request, play it, write its result. One episode only."""
    results.write(b'{"ready":true}\n')
    results.flush()
    spec = EpisodeSpec.from_json(request.read(MAX_REQUEST_BYTES))
    emulator = prepare_env(prepared, *spec.env_setting)
    episode = play_episode(emulator, spec, policy)
    results.write(json.dumps({"episode": episode}, separators=(",", ":")).encode() + b"\n")
    results.flush()


def policy_argv(python: str, package_root: str, site_dirs: list[str]) -> list[str]:
    """The policy interpreter's command line: no site, no user site, no environment-derived
    path (the environment is cleared to PYTHONHASHSEED alone, which -I would ignore too, and
    the episode must replay the same for the same seed); the runner's path set explicitly."""
    path = [package_root, *site_dirs]
    boot = (
        f"import sys; sys.path[:0] = {path!r}; "
        "from sandbox.runtime.policy_runner import main; main()"
    )
    return [python, "-s", "-S", "-P", "-c", boot]


def main() -> None:
    """A harness process of its own (docker): `--uid H --policy-uid P` (started as root with
    only CAP_SETUID/CAP_SETGID: the policy process is started under P, then the harness drops
    to H, before anything else happens), `--prepare GAME,FRAMESKIP,STICKY` (an emulator to
    build before saying ready)."""
    results = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the result stream
    args = dict(zip(sys.argv[1::2], sys.argv[2::2], strict=False))
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import site

    argv = policy_argv(sys.executable, package_root, site.getsitepackages())
    policy_uid = int(args["--policy-uid"]) if "--policy-uid" in args else None
    if policy_uid is not None:
        from sandbox.runtime.namespaces import drop_bounding_set

        drop_bounding_set()  # the permitted CAP_SETUID/SETGID stay usable until the drop below
    policy = PolicyProcess.spawn(argv, {"PYTHONHASHSEED": "0"}, policy_uid)
    if "--uid" in args:
        uid = int(args["--uid"])
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)  # from root: every capability goes with it
    make_undumpable()
    prepared: PreparedEnvs = {}
    if "--prepare" in args:  # one episode per process: reset snapshots would not pay
        game, frameskip, sticky = args["--prepare"].split(",")
        prepare_env(prepared, game, int(frameskip), float(sticky))
    serve(sys.stdin.buffer, results, policy, prepared)


if __name__ == "__main__":
    main()
