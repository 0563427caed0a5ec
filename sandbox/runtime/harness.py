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

Talking to the policy process is sandbox/runtime/policy_process.py; what is kept for the trace,
sandbox/runtime/trace.py. This module is the episode: reset, then obs -> action -> step.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from sandbox.games import Game, get_game
from sandbox.runtime.emulator import ResetSnapshot, ale_of, make_env, reset, take_snapshot
from sandbox.runtime.observation import build_observation
from sandbox.runtime.policy_process import PolicyProcess, parse_reply, policy_argv
from sandbox.runtime.protocol import EpisodeSpec, Status
from sandbox.runtime.trace import TraceRecorder

__all__ = [
    "PolicyProcess",
    "PreparedEnvs",
    "make_undumpable",
    "policy_argv",
    "prepare_env",
    "serve",
]

STARTUP_SECONDS = 15.0  # the policy's interpreter start, imports and module body
END_SECONDS = 2.0
MAX_REQUEST_BYTES = 1 << 22
_PR_SET_DUMPABLE = 4


@dataclass
class PreparedEmulator:
    """An emulator built ahead for one setting, with snapshots of its reset for some seeds."""

    env: Any
    snapshots: dict[int, ResetSnapshot] = field(default_factory=dict)


PreparedEnvs = dict[tuple[str, int, float], PreparedEmulator]


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
        self.list_categories = frozenset(self.game.list_categories)
        self.lives: int | None = None  # read once the emulator is reset

    def observe(self, at_reset: bool = False) -> dict[str, Any]:
        """The policy's obs of the emulator as it is now (DESIGN.md §2)."""
        return build_observation(self.env.objects, self.list_categories, self.lives, at_reset)

    def count_lives(self) -> bool:
        """Read the lives counter after a step; True when one was lost."""
        if self.lives is None:
            return False
        now = self.ale.lives()
        lost = now < self.lives
        if lost:
            self.recorder.life_lost(self.step)
        self.lives = now
        return lost

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
    if not policy.learn_pid(STARTUP_SECONDS):  # a forked one says who it is, first
        episode.policy_died()
        return
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
        message = parse_reply(reply)
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
    action = parse_reply(reply)
    if isinstance(action, int) and not 0 <= action < len(episode.game.actions):
        action = {"invalid": str(action)}  # the runner checks this too, but it is untrusted
    if not isinstance(action, int):
        episode.fail_from_reply(action)
        return None
    return action


def _step(episode: Episode, obs: dict[str, Any], action: int) -> tuple[dict[str, Any], bool]:
    """One emulator step with the policy's action: count the reward (the harness is the only
    score keeper), record the step, observe the next state. Returns (obs, episode over)."""
    _, reward, terminated, truncated, _info = episode.env.step(action)
    episode.episode_return += reward
    life_lost = episode.count_lives()
    episode.recorder.record(episode.step, obs, action, float(reward), bool(reward) or life_lost)
    episode.step += 1
    return episode.observe(), bool(terminated or truncated)


def _play_steps(episode: Episode, obs: dict[str, Any]) -> dict[str, Any]:
    """The step loop; returns the last observation (for the trace)."""
    max_steps = episode.spec.max_steps
    while episode.step < max_steps:
        action = _ask_action(episode, obs)
        if action is None:
            return obs
        obs, over = _step(episode, obs, action)
        if over:
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
        message = parse_reply(reply) if reply else None
        if isinstance(message, dict):
            episode.output = str(message.get("output", ""))


def play_episode(
    emulator: PreparedEmulator, spec: EpisodeSpec, policy: PolicyProcess
) -> dict[str, Any]:
    """Play one episode of `spec` with the waiting `policy`; the result as JSON data."""
    harness_cpu = time.process_time()
    episode = Episode(spec, get_game(spec.game), emulator.env, policy)
    reset(emulator.env, spec.seed, emulator.snapshots)
    episode.lives = episode.ale.lives() if episode.game.has_lives else None
    obs = episode.observe(at_reset=True)
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


def main() -> None:
    """A harness process of its own (docker): `--uid H --policy-uid P` (started as root with
    only CAP_SETUID/SETGID/SETPCAP/SYS_NICE: the priorities are reset, the policy process is
    started under P, then the harness drops to H, before anything else happens), `--prepare
    GAME,FRAMESKIP,STICKY` (an emulator to build before saying ready)."""
    results = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the result stream
    args = dict(zip(sys.argv[1::2], sys.argv[2::2], strict=False))
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import site

    argv = policy_argv(sys.executable, package_root, site.getsitepackages())
    policy_uid = int(args["--policy-uid"]) if "--policy-uid" in args else None
    if policy_uid is not None:
        from sandbox.runtime.namespaces import drop_bounding_set, reset_priorities

        # Nice 0 and I/O priority BE/4 before the policy is started (it inherits both), as the
        # bwrap zygote does: whatever priority the engine gave the container carries over to
        # no policy. Lowering a nice value takes CAP_SYS_NICE, held until the drop below.
        reset_priorities()
        drop_bounding_set()  # the permitted capabilities stay usable until the drop below
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
