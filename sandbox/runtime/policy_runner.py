"""The untrusted side: load one policy module and answer `act(obs)` calls over a pipe.

A new process for every episode, started before the episode is known (the sandbox is warm), so
no state leaks between episodes or programs: an interpreter exec'd for it (docker), or a fork
of the policy zygote, which has done the same imports and never run untrusted code (bwrap,
`--sandbox none`; sandbox/runtime/policy_zygote.py). It runs under a uid of its own, in its own
session, with an empty /tmp of its own. It confines itself (rlimits + seccomp) before touching
the policy source, then speaks a line protocol on two inherited file descriptors:

    harness -> runner   one JSON object per line: the observation, or {"end": true}
    runner  -> harness  an action as a bare int line (the hot path), or one JSON object:
                        {"invalid": "<repr>"}, {"error": "<traceback>"}, {"memory": "..."},
                        {"ready": true}, {"end": true, "output": "..."}; a forked runner
                        first says {"pid": N} (its pid in the sandbox)

The first harness -> runner message is the setup: source, seed, limits.

Its stdout and stderr are /dev/null: prints are captured in memory (capped) and handed over at
the end, so nothing the policy writes can reach the harness's result stream.
"""

from __future__ import annotations

import io
import json
import os
import sys
import traceback
from typing import Any

import orjson

from sandbox import policy_rules

POLICY_FILENAME = "<policy>"
_MAX_ACTION = 2**31


class CappedText(io.TextIOBase):
    """sys.stdout/stderr for the policy: keeps the first `limit` characters, counts the rest."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.kept = 0
        self.dropped = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        text = str(text)
        room = self.limit - self.kept
        if room > 0:
            self.parts.append(text[:room])
            self.kept += min(room, len(text))
        self.dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def getvalue(self) -> str:
        value = "".join(self.parts)
        if self.dropped:
            value += f"\n...[{self.dropped} more characters of output dropped]"
        return value


def _safe_repr(value: Any) -> str:
    """repr() of anything the policy returned, bounded, never raising."""
    try:
        text = repr(value)
    except BaseException:  # huge ints raise ValueError, hostile __repr__ anything
        text = f"<unrepresentable {type(value).__name__}>"
    return text if len(text) <= 200 else text[:200] + "..."


def _policy_traceback(error: BaseException) -> str:
    """The traceback from the policy's own frames only: what an LLM needs to fix its code."""
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if frame.filename == POLICY_FILENAME
    ]
    lines = ["Traceback (most recent call last):\n"]
    lines += traceback.format_list(frames)
    lines += traceback.format_exception_only(type(error), error)
    text = "".join(lines)
    return text if len(text) <= 4000 else text[:1000] + "\n...\n" + text[-3000:]


class Channel:
    """Line-framed messages over the two inherited pipe ends."""

    def __init__(self, request_fd: int, reply_fd: int) -> None:
        self._requests = os.fdopen(request_fd, "rb", buffering=1 << 16)
        self._reply_fd = reply_fd
        self._actions: tuple[bytes, ...] = ()

    def receive(self) -> Any:
        line = self._requests.readline()
        if not line:
            raise EOFError
        return orjson.loads(line)

    def set_actions(self, n_actions: int) -> None:
        """Encode each action's reply once: the hot path then only writes bytes."""
        self._actions = tuple(b"%d\n" % index for index in range(n_actions))

    def send_action(self, index: int) -> None:
        """One valid action index (the caller checked it), in one write: a pipe write of
        fewer than PIPE_BUF bytes is never split."""
        os.write(self._reply_fd, self._actions[index])

    def send(self, message: dict[str, Any] | int) -> None:
        payload = (str(message) if isinstance(message, int) else json.dumps(message)) + "\n"
        data = payload.encode()
        while data:
            data = data[os.write(self._reply_fd, data) :]


def _load_policy(source: str, restricted: bool) -> Any:
    from sandbox.runtime.restricted_env import compile_policy, policy_globals

    code = compile_policy(source, POLICY_FILENAME, restricted)
    namespace = policy_globals(restricted)
    exec(code, namespace)  # the untrusted module body, under seccomp and rlimits
    act = namespace.get("act")
    if not callable(act):
        raise TypeError("the policy module does not define a callable act(obs)")
    return act


def _classify(value: Any, n_actions: int) -> dict[str, Any] | int:
    """An action index, or why it is not one. IntEnum members count (`Action.UP`); bools and
    floats do not, whatever their value.

    The type is the object's real one: isinstance() would believe a class that claims
    `__class__ = int` (and int.__int__ on it then raises here, outside the policy's try).
    """
    kind = type(value)
    try:
        if issubclass(kind, int) and kind is not bool:
            index = int.__int__(value)  # the plain value, whatever an int subclass overrides
            if 0 <= index < n_actions:
                return index
    except Exception:  # a metaclass can fake an int base in the MRO; int.__int__ then refuses
        pass
    return {"invalid": _safe_repr(value)}


def serve(channel: Channel, act: Any, n_actions: int, output: CappedText) -> None:
    """Answer observations until the harness says the episode is over."""
    channel.set_actions(n_actions)
    receive, send_action = channel.receive, channel.send_action
    while True:
        obs = receive()
        if "end" in obs:  # never a category name: the harness's last message
            channel.send({"end": True, "output": output.getvalue()})
            return
        try:
            action = act(obs)
        except MemoryError:
            channel.send({"memory": "MemoryError in act()", "output": output.getvalue()})
            return
        except BaseException as error:  # the policy's bug, SystemExit included
            channel.send({"error": _policy_traceback(error), "output": output.getvalue()})
            return
        if type(action) is int and 0 <= action < n_actions:  # the hot path: a plain int
            send_action(action)
            continue
        reply = _classify(action, n_actions)
        channel.send(reply)
        if not isinstance(reply, int):
            return


def preload() -> None:
    """Import everything a policy may use, and what confines and serves it: done before the
    program is known, while loading native code is still possible (seccomp then forbids new
    executable memory). Nothing untrusted has run when it returns, so the interpreter can be
    forked for each episode (sandbox/runtime/policy_zygote.py)."""
    for module in sorted(policy_rules.ALLOWED_MODULES):
        __import__(module)
    import random  # noqa: F401

    import sandbox.runtime.confine
    import sandbox.runtime.restricted_env  # noqa: F401


def serve_episode(request_fd: int, reply_fd: int, announce_pid: bool = False) -> None:
    """Wait for the setup, confine this process, load the program and play its episode.

    `announce_pid`: first say which pid this process has in its pid namespace (a process forked
    by the zygote is not the harness's child, so the harness cannot know it otherwise). Sent
    before anything untrusted runs, so the harness may believe it.
    """
    import random

    from sandbox.runtime.confine import confine

    channel = Channel(request_fd, reply_fd)
    if announce_pid:
        channel.send({"pid": os.getpid()})
    try:
        setup = channel.receive()
    except EOFError:  # the sandbox was torn down while warm
        return
    random.seed(int(setup["seed"]))  # a policy that uses `random` replays the same episode
    output = CappedText(int(setup["output_bytes"]))
    sys.stdout = sys.stderr = output
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)

    confine(int(setup["memory_mb"]), int(setup["cpu_seconds"]))
    try:
        act = _load_policy(setup["source"], bool(setup["restricted"]))
    except MemoryError:
        channel.send({"memory": "MemoryError while loading the module", "output": ""})
        return
    except BaseException as error:
        channel.send({"error": _policy_traceback(error), "output": output.getvalue()})
        return
    channel.send({"ready": True})
    serve(channel, act, int(setup["n_actions"]), output)
    os._exit(0)  # nothing left to flush: skip the interpreter's teardown, ~100 ms


def main() -> None:
    """An interpreter of its own (docker): started warm, before its program is known."""
    preload()
    serve_episode(int(sys.argv[1]), int(sys.argv[2]))


if __name__ == "__main__":
    main()
