"""A scripted OpenAI-compatible chat server on 127.0.0.1, for tests that use the real client.

No LLM service is reachable from these machines, and mocking `openai` would test our idea of the
client rather than the client. This serves `POST /v1/chat/completions` over real HTTP from a
queue of scripted steps, one per request, in order:

    Answer(text)                 a normal chat.completion with `usage`
    Status(429, retry_after=2)   an OpenAI-style error body with that status (and header)
    Raw("not json")              any body, status and content type (malformed answers)
    Hang(2.0)                    wait that long before answering (past a short client timeout)
    a callable(body) -> step     decide from the request (e.g. answer depending on the prompt)

Tuples are accepted as shorthand: ("answer", text), ("status", 500), ("status", 429, 1.5),
("hang", 2.0), ("raw", body). Every request body is recorded in `.requests` (parsed JSON) so
tests can assert on prompts. When the script runs out, `when_empty` answers (default: HTTP 500,
which a test notices; the loop's end-to-end test can pass `Answer(DEFAULT_PROGRAM)` instead).

    with ScriptedLLM([Answer(program)]) as llm:
        LlmProposer("test-model", base_url=llm.base_url, api_key="test")
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_PROGRAM = '''\
"""Follow the ball with the paddle."""


def act(obs):
    player = obs.get("Player")
    ball = obs.get("Ball")
    if player is None or ball is None:
        return 0
    if ball["y"] < player["y"]:
        return 2
    if ball["y"] > player["y"] + player["h"]:
        return 3
    return 0
'''


@dataclass(frozen=True)
class Answer:
    text: str
    prompt_tokens: int | None = None  # None: estimated as characters / 4
    completion_tokens: int | None = None
    finish_reason: str = "stop"


@dataclass(frozen=True)
class Status:
    code: int
    retry_after: float | str | None = None  # sent as the Retry-After header when set
    message: str | None = None


@dataclass(frozen=True)
class Raw:
    """Any body with any status: for malformed answers (a proxy's error page, bad JSON)."""

    body: str
    code: int = 200
    content_type: str = "application/json"


@dataclass(frozen=True)
class Hang:
    seconds: float
    then: Answer | Status | Raw | None = None  # sent after the wait (the client is gone)


Step = Answer | Status | Raw | Hang
Script = Step | tuple[Any, ...] | Callable[[dict[str, Any]], Any]


def as_step(item: Script, body: dict[str, Any]) -> Step:
    """A step from the dataclasses, the tuple shorthand, or a callable of the request body."""
    if isinstance(item, Answer | Status | Raw | Hang):
        return item
    if callable(item):
        return as_step(item(body), body)
    kind, *args = item
    if kind == "answer":
        return Answer(*args)
    if kind == "status":
        return Status(*args)
    if kind == "hang":
        return Hang(*args)
    if kind == "raw":
        return Raw(*args)
    raise ValueError(f"unknown scripted step {item!r}")


class ScriptedLLM:
    """The server; `start()` returns self, `base_url` ends in /v1, `stop()` is idempotent."""

    def __init__(
        self,
        steps: Iterable[Script] = (),
        *,
        when_empty: Script = Status(500, message="the scripted LLM has no more steps"),
        model: str = "scripted-model",
    ) -> None:
        self.steps: deque[Script] = deque(steps)
        self.when_empty = when_empty
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> ScriptedLLM:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.llm = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes any Hang
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> ScriptedLLM:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the server first"
        host, port = self._server.server_address[:2]
        assert isinstance(host, str), host  # an IPv4 server: (host, port)
        return f"http://{host}:{port}/v1"

    def add(self, *steps: Script) -> None:
        """Append steps to the script (e.g. between loop iterations)."""
        with self._lock:
            self.steps.extend(steps)

    @property
    def remaining(self) -> int:
        with self._lock:
            return len(self.steps)

    # -- serving -------------------------------------------------------------------------------

    def _next(self, body: dict[str, Any], headers: dict[str, str]) -> Step:
        with self._lock:
            self.requests.append(body)
            self.headers.append(headers)
            item = self.steps.popleft() if self.steps else self.when_empty
        return as_step(item, body)

    def _completion(self, step: Answer, body: dict[str, Any]) -> dict[str, Any]:
        prompt_chars = sum(len(str(m.get("content", ""))) for m in body.get("messages", []))
        prompt_tokens = step.prompt_tokens
        if prompt_tokens is None:
            prompt_tokens = max(1, prompt_chars // 4)
        completion_tokens = step.completion_tokens
        if completion_tokens is None:
            completion_tokens = max(1, len(step.text) // 4)
        index = len(self.requests)
        return {
            "id": f"chatcmpl-scripted-{index}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", self.model),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": step.text},
                    "finish_reason": step.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a Hang must not hold up stop()
    llm: ScriptedLLM


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._send(400, {"error": {"message": "body is not JSON", "type": "invalid_request"}})
            return
        llm = self.server.llm
        step = llm._next(body, {key.lower(): value for key, value in self.headers.items()})
        if isinstance(step, Hang):
            llm._stopping.wait(step.seconds)
            step = step.then or Answer(DEFAULT_PROGRAM)
        if isinstance(step, Raw):
            self._send_bytes(step.code, step.body.encode(), {"Content-Type": step.content_type})
            return
        if isinstance(step, Status):
            headers = {} if step.retry_after is None else {"Retry-After": str(step.retry_after)}
            message = step.message or f"scripted HTTP {step.code}"
            error = {"message": message, "type": "scripted_error", "code": str(step.code)}
            self._send(step.code, {"error": error}, headers)
            return
        self._send(200, llm._completion(step, body))

    def _send(self, code: int, payload: dict[str, Any], headers: dict[str, str] | None = None):
        headers = {"Content-Type": "application/json", **(headers or {})}
        self._send_bytes(code, json.dumps(payload).encode(), headers)

    def _send_bytes(self, code: int, data: bytes, headers: dict[str, str]) -> None:
        try:
            self.send_response(code)
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a Hang past its timeout)

    def log_message(self, format: str, *args: Any) -> None:
        pass
