"""LLM calls recorded as each attempt ends: client ids, a one-way link, prompts stored once,
replies capped, and untrusted text that every backend can store (issue #12)."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select, text, update

from storage import AppendOnlyError, InvalidInputError, LlmExchange, NotFoundError, Store
from storage.encode import cap_text, storable_text
from storage.models import LlmCall, LlmPrompt
from tests.storage.factories import PONG_ENV, policy

PROMPT = "### system\nYou write Python programs that play Atari games.\n" * 150  # ~8 KB


def _prompt_rows(store: Store) -> int:
    with store._read() as session:
        return int(session.scalar(select(func.count()).select_from(LlmPrompt)) or 0)


def _run_with_program(store: Store) -> tuple[str, str]:
    run = store.create_run("Pong", PONG_ENV)
    program = store.add_program(run.id, policy(1), origin="seed")
    return run.id, program.id


def test_llm_call_keeps_the_client_made_id(store: Store) -> None:
    run_id, parent_id = _run_with_program(store)
    call_id = uuid.uuid4().hex
    call = store.record_llm_call(
        run_id,
        LlmExchange(prompt=PROMPT, model="m", error="HTTP 503", id=call_id),
        parent_program_id=parent_id,
    )
    assert call.id == call_id
    stored = store.get_llm_call(call_id)
    assert (stored.error, stored.parent_program_id, stored.produced_program_id) == (
        "HTTP 503",
        parent_id,
        None,
    )


def test_llm_call_recorded_twice_with_one_id_is_one_row(store: Store) -> None:
    run_id, _ = _run_with_program(store)
    call_id = uuid.uuid4().hex
    first = store.record_llm_call(
        run_id,
        LlmExchange(prompt=PROMPT, model="m", response="a", id=call_id),
    )
    again = store.record_llm_call(
        run_id,
        LlmExchange(prompt=PROMPT, model="m", response="b", id=call_id),
    )
    assert again.id == first.id and again.response == "a"  # the stored row, unchanged
    assert [call.id for call in store.llm_calls(run_id)] == [call_id]


def test_llm_call_id_of_another_run_or_malformed_is_refused(store: Store) -> None:
    run_id, _ = _run_with_program(store)
    other = store.create_run("Pong", PONG_ENV)
    call_id = uuid.uuid4().hex
    store.record_llm_call(run_id, LlmExchange(prompt=PROMPT, model="m", id=call_id))
    with pytest.raises(InvalidInputError, match="belongs to run"):
        store.record_llm_call(other.id, LlmExchange(prompt=PROMPT, model="m", id=call_id))
    with pytest.raises(InvalidInputError, match="32 lowercase hex"):
        store.record_llm_call(
            run_id,
            LlmExchange(prompt=PROMPT, model="m", id="'; DROP TABLE run; --"),
        )


def test_llm_call_link_sets_the_produced_program_once(store: Store) -> None:
    run_id, parent_id = _run_with_program(store)
    call = store.record_llm_call(run_id, LlmExchange(prompt=PROMPT, model="m", id=uuid.uuid4().hex))
    child = store.add_program(run_id, policy(2), parent_id=parent_id)
    other = store.add_program(run_id, policy(3), parent_id=parent_id)

    assert store.link_llm_call(call.id, child.id).produced_program_id == child.id
    assert store.link_llm_call(call.id, child.id).produced_program_id == child.id  # no-op
    with pytest.raises(AppendOnlyError, match="already produced program") as refused:
        store.link_llm_call(call.id, other.id)
    assert "\n" not in str(refused.value)
    assert store.get_llm_call(call.id).produced_program_id == child.id


def test_llm_call_link_checks_the_call_and_the_program(store: Store) -> None:
    run_id, _ = _run_with_program(store)
    _, other_program = _run_with_program(store)
    call = store.record_llm_call(run_id, LlmExchange(prompt=PROMPT, model="m"))
    with pytest.raises(NotFoundError):
        store.link_llm_call("0" * 32, other_program)
    with pytest.raises(InvalidInputError, match="belongs to run"):
        store.link_llm_call(call.id, other_program)
    with pytest.raises(NotFoundError):
        store.link_llm_call(call.id, "0" * 32)


def test_llm_call_produced_program_is_one_way_below_the_store(store: Store) -> None:
    """The one-way rule holds for any ORM write, not only for `link_llm_call`."""
    run_id, parent_id = _run_with_program(store)
    child = store.add_program(run_id, policy(2), parent_id=parent_id)
    call = store.record_llm_call(
        run_id,
        LlmExchange(prompt=PROMPT, model="m"),
        produced_program_id=child.id,
    )
    with pytest.raises(AppendOnlyError, match="once set"), store._write() as session:
        session.get(LlmCall, call.id).produced_program_id = parent_id  # type: ignore[union-attr]
    with pytest.raises(AppendOnlyError, match="once set"), store._write() as session:
        session.get(LlmCall, call.id).produced_program_id = None  # type: ignore[union-attr]
    with pytest.raises(AppendOnlyError, match="bulk"), store._write() as session:
        session.execute(update(LlmCall).values(produced_program_id=None))
    with pytest.raises(AppendOnlyError, match=r"llm_call\.response"), store._write() as session:
        session.get(LlmCall, call.id).response = "rewritten"  # type: ignore[union-attr]
    assert store.get_llm_call(call.id).produced_program_id == child.id


def test_llm_call_prompts_are_stored_once(store: Store) -> None:
    run_id, _ = _run_with_program(store)
    for attempt in range(5):  # one proposal: the same prompt, four failures and an answer
        store.record_llm_call(
            run_id,
            LlmExchange(prompt=PROMPT, model="m", error=f"HTTP 503 #{attempt}"),
        )
    store.record_llm_call(run_id, LlmExchange(prompt=PROMPT + "changed", model="m"))
    calls = store.llm_calls(run_id)
    assert len(calls) == 6 and _prompt_rows(store) == 2
    assert [call.prompt for call in calls] == [PROMPT] * 5 + [PROMPT + "changed"]
    assert store.get_llm_call(calls[0].id).prompt == PROMPT  # read back transparently


def test_llm_call_same_prompt_from_concurrent_writers(database: str | Path) -> None:
    """Two processes' first calls with one prompt: both land, the prompt is stored once."""
    with Store.open(database) as setup:
        run_id, _ = _run_with_program(setup)
    stores = [Store.open(database) for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    failures: list[BaseException] = []

    def write(store: Store, number: int) -> None:
        try:
            for round_number in range(10):
                barrier.wait(timeout=60)
                store.record_llm_call(
                    run_id,
                    LlmExchange(prompt=f"{PROMPT}{round_number}", model=f"{number}"),
                )
        except BaseException as error:
            failures.append(error)
            barrier.abort()

    threads = [threading.Thread(target=write, args=(s, n)) for n, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    for store in stores:
        store.close()
    assert failures == []
    with Store.open(database) as store:
        assert len(store.llm_calls(run_id)) == 40
        assert _prompt_rows(store) == 10


def test_llm_call_response_is_capped_and_the_cut_recorded(database: str | Path) -> None:
    with Store.open(database, response_cap_bytes=1000) as store:
        run_id, _ = _run_with_program(store)
        huge = "```python\n" + policy(2) + "```\n" + "é" * 2_500_000  # 5 MB of two-byte letters
        call = store.record_llm_call(run_id, LlmExchange(prompt=PROMPT, model="m", response=huge))
        small = store.record_llm_call(
            run_id,
            LlmExchange(prompt=PROMPT, model="m", response="short"),
        )
        stored = store.get_llm_call(call.id)
        assert stored.response is not None and huge.startswith(stored.response)
        assert len(stored.response.encode()) <= 1000
        assert stored.response_truncated_bytes == len(huge.encode()) - len(stored.response.encode())
        assert stored.response_truncated_bytes > 4_000_000
        kept = store.get_llm_call(small.id)
        assert (kept.response, kept.response_truncated_bytes) == ("short", 0)


def test_llm_call_untrusted_text_is_stored_on_every_backend(store: Store) -> None:
    run_id, _ = _run_with_program(store)
    hostile = "before\x00after \ud800 lone surrogate"
    call = store.record_llm_call(
        run_id,
        LlmExchange(prompt=hostile, model="m\x00", response=hostile, error=hostile),
    )
    stored = store.get_llm_call(call.id)
    for value in (stored.prompt, stored.response, stored.error, stored.model):
        assert value is not None and "\x00" not in value
        value.encode("utf-8")  # valid UTF-8 now
    assert stored.response == "before\ufffdafter ? lone surrogate"


def test_cap_text_never_cuts_a_character() -> None:
    assert cap_text("abc", 10) == ("abc", 0)
    assert cap_text("ééé", 3) == ("é", 4)  # 6 bytes: one 2-byte letter fits in 3
    assert cap_text("a" * 10, 0) == ("", 10)
    assert storable_text("plain") == "plain"


def test_llm_call_rows_keep_no_prompt_column(store: Store) -> None:
    """The prompt lives in llm_prompt only (the point of the dedup)."""
    with store._read() as session:
        columns = {
            row[1] if store.path else row[0]
            for row in session.execute(
                text("PRAGMA table_info(llm_call)")
                if store.path
                else text(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_name = 'llm_call'"
                )
            )
        }
    assert "prompt" not in columns and {"prompt_sha256", "response_truncated_bytes"} <= columns
