"""A chaos OpenAI-compatible chat server on 127.0.0.1: every way a real endpoint misbehaves.

`ScriptedLLM` answers exactly what a test scripts; this one answers what an unattended run
meets over days, chosen per request from a seeded random mix (or forced, in order, by
`script`), so the same seed replays the same chaos:

    ok            a chat.completion whose content holds a fresh, valid program
    rate_limited  429 with Retry-After      rate_limited_bare  429 without it
    error_500     500                       unavailable_503    503
    bad_json      200 whose body is not JSON
    cut_body      200 whose body stops mid-way (Content-Length promises more, then close)
    hang          no answer for `hang_seconds` or until `release_hangs()`, then `after_hang`
                  (default: a valid answer, often to a client long gone)
    huge          a valid program followed by `huge_bytes` (5 MB) of padding
    list_content  content as a list of text parts   int_content / null_content  42 / null
    bad_usage     a valid answer whose token counts are not numbers
    syntax_error  a program that does not parse     hostile  a program the sandbox must stop
    prose         an answer without code

Bounded in time: it listens on 127.0.0.1 only, every hang is cut short by `stop()`, and the
server stops itself after `lifetime_seconds` whatever the test does. `served` counts requests
received (what a soak compares with the calls recorded); `kinds` says what each one got.

    with ChaosLLM(seed=1) as chaos:
        LlmProposer("chaos", base_url=chaos.base_url, api_key="test")
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

KINDS = (
    "ok",
    "rate_limited",
    "rate_limited_bare",
    "error_500",
    "unavailable_503",
    "bad_json",
    "cut_body",
    "hang",
    "huge",
    "list_content",
    "int_content",
    "null_content",
    "bad_usage",
    "syntax_error",
    "hostile",
    "prose",
)

DEFAULT_WEIGHTS: Mapping[str, float] = {
    "ok": 6.0,
    "rate_limited": 1.0,
    "rate_limited_bare": 0.5,
    "error_500": 1.0,
    "unavailable_503": 1.0,
    "bad_json": 0.5,
    "cut_body": 0.5,
    "hang": 0.5,
    "huge": 0.3,
    "list_content": 1.0,
    "int_content": 0.3,
    "null_content": 0.3,
    "bad_usage": 0.3,
    "syntax_error": 1.0,
    "hostile": 1.0,
    "prose": 0.5,
}

PROGRAM_TEMPLATE = '''\
"""Follow the ball (chaos variant {variant})."""

MARGIN = {margin}


def act(obs):
    player = obs.get("Player")
    ball = obs.get("Ball")
    if player is None or ball is None:
        return 0
    if ball["y"] < player["y"] + MARGIN:
        return 2
    if ball["y"] > player["y"] + player["h"] - MARGIN:
        return 3
    return 0
'''

SYNTAX_ERROR_PROGRAM = "def act(obs):\n    return (2 if obs else\n"

HOSTILE_PROGRAMS = (
    "import os\n\n\ndef act(obs):\n    os.system('touch /tmp/evocade-chaos-owned')\n    return 0\n",
    "def act(obs):\n    while True:\n        pass\n",
    "def act(obs):\n    hoard = [0] * (10**9)\n    return len(hoard) % 6\n",
    "def act(obs):\n    return 'up'\n",
    "def act(obs):\n    return [].pop()\n",
)


def fenced(code: str) -> str:
    return f"I changed the policy as follows.\n\n```python\n{code}```\n"


class ChaosLLM:
    """The server; `start()` returns self, `base_url` ends in /v1, `stop()` is idempotent."""

    def __init__(
        self,
        *,
        seed: int = 0,
        weights: Mapping[str, float] | None = None,
        script: Iterable[str] = (),
        hang_seconds: float = 30.0,
        after_hang: str = "ok",
        retry_after_seconds: float = 1.0,
        huge_bytes: int = 5 * 1024 * 1024,
        lifetime_seconds: float = 600.0,
        model: str = "chaos-model",
    ) -> None:
        weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
        script = list(script)
        unknown = (set(weights) | set(script) | {after_hang}) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown chaos kinds: {sorted(unknown)}")
        if after_hang == "hang":
            raise ValueError("after_hang cannot be another hang")
        self._kinds = [kind for kind in KINDS if weights.get(kind, 0) > 0]
        self._weights = [weights[kind] for kind in self._kinds]
        if not self._kinds and not script:
            raise ValueError("no chaos kind has a positive weight")
        self._script: deque[str] = deque(script)
        self._rng = random.Random(seed)
        self.hang_seconds = hang_seconds
        self.after_hang = after_hang
        self.retry_after_seconds = retry_after_seconds
        self.huge_bytes = huge_bytes
        self.lifetime_seconds = lifetime_seconds
        self.model = model
        self.kinds: list[str] = []  # what request i got, in arrival order
        self.arrivals: list[float] = []  # time.monotonic() when request i was read
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._hangs = threading.Condition()
        self._hang_generation = 0
        self._hanging = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._watchdog: threading.Timer | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> ChaosLLM:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.chaos = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self._watchdog = threading.Timer(self.lifetime_seconds, self.stop)
        self._watchdog.daemon = True
        self._watchdog.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self.release_hangs()
        with self._lock:
            server, self._server = self._server, None
            thread, self._thread = self._thread, None
            watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None and watchdog is not threading.current_thread():
            watchdog.cancel()
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> ChaosLLM:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        server = self._server
        assert server is not None, "start() the server first"
        port = server.server_address[1]
        return f"http://127.0.0.1:{port}/v1"

    @property
    def served(self) -> int:
        """Chat requests received (each got, or was getting, one chaos answer)."""
        with self._lock:
            return len(self.kinds)

    def counts(self) -> Counter[str]:
        with self._lock:
            return Counter(self.kinds)

    @property
    def hanging(self) -> int:
        """Requests being held by a hang right now."""
        with self._hangs:
            return self._hanging

    def release_hangs(self) -> None:
        """End every hang in progress now (they then answer `after_hang`)."""
        with self._hangs:
            self._hang_generation += 1
            self._hangs.notify_all()

    def _hang(self) -> None:
        with self._hangs:
            generation = self._hang_generation
            self._hanging += 1
            try:
                self._hangs.wait_for(
                    lambda: self._hang_generation != generation or self._stopping.is_set(),
                    timeout=self.hang_seconds,
                )
            finally:
                self._hanging -= 1

    def force(self, *kinds: str) -> None:
        """Answer the next requests with these kinds, in order, then go back to random."""
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown chaos kinds: {sorted(unknown)}")
        with self._lock:
            self._script.extend(kinds)

    # -- answers -------------------------------------------------------------------------------

    def _choose(self, body: dict[str, Any]) -> tuple[str, int, random.Random]:
        with self._lock:
            kind = (
                self._script.popleft()
                if self._script
                else self._rng.choices(self._kinds, self._weights)[0]
            )
            index = len(self.kinds)
            self.kinds.append(kind)
            self.arrivals.append(time.monotonic())
            self.requests.append(body)
            answer_rng = random.Random(self._rng.random())
        return kind, index, answer_rng

    def _completion(
        self, body: dict[str, Any], content: Any, *, usage: Any = None
    ) -> dict[str, Any]:
        prompt_chars = sum(len(str(m.get("content", ""))) for m in body.get("messages", []))
        if usage is None:
            completion_tokens = max(1, len(str(content)) // 4)
            prompt_tokens = max(1, prompt_chars // 4)
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            }
        return {
            "id": f"chatcmpl-chaos-{len(self.kinds)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", self.model),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
        }

    def _answer(
        self, kind: str, index: int, rng: random.Random, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """(status, JSON payload, headers) for one request of this kind."""
        program = PROGRAM_TEMPLATE.format(variant=index, margin=rng.randint(-4, 8))
        if kind == "ok":
            return 200, self._completion(body, fenced(program)), {}
        if kind == "rate_limited":
            return 429, _error("rate limited"), {"Retry-After": f"{self.retry_after_seconds:g}"}
        if kind == "rate_limited_bare":
            return 429, _error("rate limited"), {}
        if kind == "error_500":
            return 500, _error("internal error"), {}
        if kind == "unavailable_503":
            return 503, _error("overloaded"), {}
        if kind == "huge":
            padding = "# " + "x" * (self.huge_bytes - 3) + "\n"
            return 200, self._completion(body, fenced(program) + padding), {}
        if kind == "list_content":
            parts = [
                {"type": "text", "text": "I changed the policy.\n\n```python\n"},
                {"type": "text", "text": program + "```\n"},
            ]
            return 200, self._completion(body, parts), {}
        if kind == "int_content":
            return 200, self._completion(body, 42), {}
        if kind == "null_content":
            return 200, self._completion(body, None), {}
        if kind == "bad_usage":
            usage = {"prompt_tokens": "many", "completion_tokens": -3, "total_tokens": None}
            return 200, self._completion(body, fenced(program), usage=usage), {}
        if kind == "syntax_error":
            return 200, self._completion(body, fenced(SYNTAX_ERROR_PROGRAM)), {}
        if kind == "hostile":
            hostile = rng.choice(HOSTILE_PROGRAMS)
            return 200, self._completion(body, fenced(f"# chaos {index}\n{hostile}")), {}
        if kind == "prose":
            return 200, self._completion(body, "I would move the paddle sooner."), {}
        raise AssertionError(f"unhandled chaos kind {kind}")  # bad_json, cut_body: by the handler


def _error(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "chaos", "code": None}}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a hang must not hold up stop()
    chaos: ChaosLLM


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send(404, json.dumps(_error(f"no route {self.path}")).encode(), {})
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._send(400, json.dumps(_error("body is not JSON")).encode(), {})
            return
        chaos = self.server.chaos
        kind, index, rng = chaos._choose(body)
        if kind == "hang":
            chaos._hang()
            kind = chaos.after_hang
        if kind == "bad_json":
            self._send(200, b'{"id": "chatcmpl-chaos", "choices": [{"message": ', {})
            return
        if kind == "cut_body":
            data = json.dumps(chaos._completion(body, fenced("def act(obs):\n"))).encode()
            self._send(200, data[: len(data) // 2], {}, promised=len(data))
            self.close_connection = True
            return
        status, payload, headers = chaos._answer(kind, index, rng, body)
        self._send(status, json.dumps(payload).encode(), headers)

    def _send(
        self, code: int, data: bytes, headers: dict[str, str], *, promised: int | None = None
    ) -> None:
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(promised if promised is not None else len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a hang past its timeout, or a cancelled request)

    def log_message(self, format: str, *args: Any) -> None:
        pass
