"""What the LLM proposer sends to and reads from an OpenAI-compatible server, as plain
functions: the API key, the prompt as stored text, and replies and errors turned into what an
`LlmExchange` records (each error a short line; each retry decision made once, here)."""

from __future__ import annotations

import email.utils
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import openai

from engine.extract import strip_reasoning

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})
LOCAL_PLACEHOLDER_KEY = "not-needed-for-a-local-server"
RETRY_STATUSES = frozenset({408, 409, 429})  # plus every 5xx


class LlmConfigError(ValueError):
    """The proposer cannot be built as configured (e.g. no API key for a remote server)."""


def resolve_api_key(api_key: str | None, base_url: str | None) -> str:
    """The key to send: the argument, else OPENAI_API_KEY, else (local servers only) a
    placeholder, since local OpenAI-compatible servers usually ignore it."""
    key = api_key or os.environ.get("OPENAI_API_KEY")
    if key:
        return key
    if base_url and urlparse(base_url).hostname in LOCAL_HOSTS:
        return LOCAL_PLACEHOLDER_KEY
    where = base_url or "the OpenAI API"
    raise LlmConfigError(
        f"no API key for {where}: set OPENAI_API_KEY or pass an API key "
        "(only a server on localhost may be used without one)"
    )


def render_messages(messages: list[dict[str, str]]) -> str:
    """The chat messages as one text, as stored in `LlmExchange.prompt`."""
    return "\n\n".join(f"### {m['role']}\n{m['content']}" for m in messages)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from `retry-after-ms` or `Retry-After` (seconds or an HTTP date)."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            return max(float(milliseconds) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


@dataclass(frozen=True)
class Failure:
    """A failed HTTP attempt: the error line recorded, and what to do next."""

    error: str
    retry: bool = True
    retry_after_seconds: float | None = None
    rate_limited: bool = False  # a 429: closes the shared gate
    cancelled: bool = False  # aborted by `cancel()`


def failure_of(
    error: Exception, *, cancelled: bool, waited_seconds: float, timeout_seconds: float
) -> Failure:
    """What a call that raised `error` means. Transient failures (timeouts, connection errors,
    408/409/429, 5xx, unreadable bodies) are retried; anything else the client refuses (a bad
    key, an unknown model, a malformed request) is not, since retrying cannot fix it."""
    if isinstance(error, openai.APITimeoutError | openai.APIConnectionError):
        if cancelled:
            return Failure(
                f"cancelled after {waited_seconds:.1f} s (the run is stopping)",
                retry=False,
                cancelled=True,
            )
        if isinstance(error, openai.APITimeoutError):
            return Failure(f"timed out after {timeout_seconds:g} s")
        return Failure(f"connection error: {_cause(error)}")
    if isinstance(error, openai.APIStatusError):
        status = error.status_code
        retry = status in RETRY_STATUSES or status >= 500
        return Failure(
            f"HTTP {status} ({type(error).__name__}): {_status_message(error)}",
            retry=retry,
            retry_after_seconds=retry_after(error.response.headers) if retry else None,
            rate_limited=status == 429,
        )
    if isinstance(error, ValueError):  # a 200 whose body is not valid JSON
        return Failure(f"unreadable response: {_short(error)}")
    if isinstance(error, openai.OpenAIError):  # anything else the client refuses
        return Failure(f"{type(error).__name__}: {error}", retry=False)
    # the client choked on a reply we did not foresee
    return Failure(f"unreadable response ({type(error).__name__}): {_short(error)}")


def token_count(value: Any) -> int | None:
    """A token count from `usage`, or None for anything that is not a plain count."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def raw_body(completion: Any) -> str | None:
    """What came back instead of a completion, trimmed, for the record."""
    text = completion if isinstance(completion, str) else None
    return text[:4000] if text else None


def summary(text: str) -> str:
    """The prose before the code block, shortened: what the model says it changed."""
    head = strip_reasoning(text).split("```", 1)[0]
    return " ".join(head.split())[:500]


def _short(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:300]


def _status_message(error: openai.APIStatusError) -> str:
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])[:500]
    return str(error.message)[:500]


def _cause(error: Exception) -> str:
    cause = error.__cause__ or error.__context__
    return f"{error} ({cause})" if cause else str(error)
