"""`evocade serve` end to end: the real server process, a real headless Chromium (Debian's
`chromium` + `chromium-driver`, driven by selenium), a database from a real run.

The database copy gets hostile rows first (a program source with `<script>`, an LLM reply and
an episode error with HTML in them), as a misbehaving LLM would leave them, and a second real
run whose proposer is the scripted LLM (tests/engine/scripted_llm.py, real HTTP), stopped by an
env-step budget: its pages show feedback, LLM exchanges with a cost, and a budget_hit event.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from engine.cli import main
from engine.errors import UserError
from engine.series import load_series
from engine.web.app import check_host
from storage import LlmExchange, Store
from storage.encode import holdout_env_key
from tests.engine.scripted_llm import DEFAULT_PROGRAM, Answer, ScriptedLLM
from tests.storage.factories import result

pytestmark = pytest.mark.bwrap

HOSTILE_SOURCE = (
    "# </pre><script>alert('xss')</script>\n"
    "NOTE = \"<img src=x onerror=alert('img')>\"\n"
    "def act(obs):\n"
    "    return 0\n"
)
HOSTILE_REPLY = (
    "Here you go: <script>alert('reply')</script>\n```python\ndef act(obs): return 0\n```"
)
HOSTILE_ERROR = "Traceback: <b onmouseover=alert('err')>boom</b>"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
START_DEADLINE_SECONDS = 120.0
REPLAY_DEADLINE_SECONDS = 300.0


def _chromium_or_skip() -> None:
    if Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists():
        return
    reason = "chromium and chromium-driver are not installed (scripts/install.sh installs them)"
    required = {n.strip() for n in os.environ.get("EVOCADE_REQUIRE_BACKENDS", "").split(",")}
    if "chromium" in required:
        pytest.fail(reason)
    pytest.skip(reason)


@dataclass(frozen=True)
class Site:
    url: str
    db: Path
    db_sha256: str
    run_id: str
    program_ids: list[str]
    hostile_id: str
    evaluation_id: str  # a real evaluation with a trace
    untraced_id: str  # an evaluation recorded without traces
    cache_dir: Path
    llm_run_id: str  # a second real run, proposed by the scripted LLM, stopped by a budget


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def site(real_run_db: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    base = tmp_path_factory.mktemp("web")
    db = base / "site.db"
    shutil.copy(real_run_db[0], db)
    run_id = real_run_db[1]
    with Store.open(db) as store:
        head = store.get_run(run_id).head_program_id
        hostile = store.add_program(
            run_id, HOSTILE_SOURCE, origin="llm", parent_id=head, note="<i>note</i>"
        )
        store.record_llm_call(
            run_id,
            LlmExchange(
                prompt="feedback <script>alert('prompt')</script>",
                model="scripted",
                response=HOSTILE_REPLY,
                tokens_in=120,
                tokens_out=40,
                latency_seconds=0.25,
                cost=0.0012,
            ),
            parent_program_id=head,
            produced_program_id=hostile.id,
        )
        failed = result([-1.0], lengths=[5], trace_steps=None)
        failed["episodes"][0].update(status="error", error=HOSTILE_ERROR)
        failed["status"] = "error"
        untraced = store.record_evaluation(hostile.id, failed)
        program_ids = [row.program_id for row in store.history(run_id)]
        evaluation_id = store.run_evaluations(run_id)[0].id
    llm_run_id = _llm_run(db, base)
    cache_dir = base / "cache"
    with _serving(db, cache_dir, base / "serve.log") as url:
        yield Site(
            url,
            db,
            _sha256(db),
            run_id,
            program_ids,
            hostile.id,
            evaluation_id,
            untraced.id,
            cache_dir,
            llm_run_id,
        )


def _scripted_program(number: int) -> str:
    """The scripted LLM's program number `number`: one line differs from any other's."""
    return DEFAULT_PROGRAM.replace("return 0\n", f"return 0  # scripted change {number}\n", 1)


def _llm_run(db: Path, base: Path) -> str:
    """A real short run into `db` whose proposer is the LLM (the scripted server over real
    HTTP), with a price table (so calls have a cost) and an env-step budget it hits (so the
    run has a budget_hit event); its run id."""
    answers = [
        Answer(
            f"Try this.\n```python\n{_scripted_program(n)}```\n",
            prompt_tokens=500 + n,
            completion_tokens=100 + n,
        )
        for n in range(8)
    ]
    config = base / "prices.toml"
    config.write_text("[prices]\nscripted = [1000.0, 2000.0]\n")
    out = io.StringIO()
    with ScriptedLLM(answers) as llm, pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPENAI_API_KEY", "test")
        args = ["run", "--game", "Pong", "--model", "scripted", "--base-url", llm.base_url]
        args += ["--iterations", "4", "--episodes", "1", "--max-steps", "300"]
        args += ["--max-env-steps", "1500", "--sandbox", "bwrap", "--config", str(config)]
        with contextlib.redirect_stdout(out):
            assert main([*args, "--db", str(db), "--json"]) == 0, out.getvalue()
    return str(json.loads(out.getvalue().strip().splitlines()[-1])["run_id"])


@contextlib.contextmanager
def _serving(db: Path, cache_dir: Path, log_path: Path, *options: str) -> Iterator[str]:
    """Run the real `evocade serve` process on a free loopback port; yield its base URL once
    it answers, stop it afterwards."""
    port = _free_port()
    args = [sys.executable, "-m", "engine.cli", "serve", "--db", str(db), "--port", str(port)]
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [*args, "--cache-dir", str(cache_dir), *options], stdout=log, stderr=log
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + START_DEADLINE_SECONDS
            while True:
                assert server.poll() is None, log_path.read_text()
                try:
                    if httpx.get(url + "/", timeout=10).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
            yield url
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    _chromium_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        "--window-size=1280,1000",
    ):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(REPLAY_DEADLINE_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()


def _console_errors(driver: Any) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def _no_alert(driver: Any) -> bool:
    from selenium.common.exceptions import NoAlertPresentException

    try:
        driver.switch_to.alert  # noqa: B018 - the property raises when there is none
    except NoAlertPresentException:
        return True
    return False


def test_web_pages_load_without_console_errors(site: Site, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    pages = ["/", f"/run/{site.run_id}", *(f"/program/{pid}" for pid in site.program_ids)]
    for path in pages:
        browser.get(site.url + path)
        assert browser.find_element(By.TAG_NAME, "h1").text, path
        assert _console_errors(browser) == [], path
    assert len(browser.find_elements(By.CSS_SELECTOR, "table.episodes tr")) >= 2

    browser.get(f"{site.url}/evaluation/{site.evaluation_id}/episode/0")
    image = browser.find_element(By.CSS_SELECTOR, "img.replay")
    WebDriverWait(browser, REPLAY_DEADLINE_SECONDS).until(
        lambda driver: driver.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth", image
        )
    )
    assert browser.execute_script("return arguments[0].naturalWidth", image) == 320
    assert _console_errors(browser) == []

    browser.get(f"{site.url}/runs/nothing-here")
    assert "404" in browser.find_element(By.TAG_NAME, "h1").text
    (error,) = _console_errors(browser)  # the one error: the 404 itself, as asked for
    assert "404" in error


def test_web_runs_list_shows_a_sparkline_per_run(site: Site, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    browser.get(site.url + "/")
    rows = browser.find_elements(By.CSS_SELECTOR, "table.runs tbody tr")
    assert len(rows) == 2  # the mutate run and the LLM run
    for row in rows:
        assert row.find_elements(By.CSS_SELECTOR, "svg.spark polyline")


def test_web_lineage_tree_links_to_program_pages(site: Site, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{site.url}/run/{site.run_id}")
    links = browser.find_elements(By.CSS_SELECTOR, "svg.lineage a")
    targets = [link.get_dom_attribute("href") for link in links]
    assert sorted(targets) == sorted(f"/program/{pid}" for pid in site.program_ids)
    hostile = next(link for link in links if site.hostile_id in link.get_dom_attribute("href"))
    hostile.click()
    assert browser.current_url == f"{site.url}/program/{site.hostile_id}"
    assert site.hostile_id[:8] in browser.find_element(By.TAG_NAME, "h1").text


def test_web_run_history_shows_each_programs_held_out_score(site: Site, browser: Any) -> None:
    """The held-out column holds what the store has under the held-out key, program by
    program, and the header quotes the best of them beside the training best."""
    from selenium.webdriver.common.by import By

    with Store.open(site.db) as store:
        run = store.get_run(site.run_id)
        key = holdout_env_key(run.game, run.env or {})
        held = {
            e.program_id: f"{e.mean_return:+.2f}"
            for e in store.run_evaluations(site.run_id)
            if e.env_key == key and e.status == "ok" and e.mean_return is not None
        }
    assert held, "the real run confirmed no program on held-out seeds"
    browser.get(f"{site.url}/run/{site.run_id}")
    table = browser.find_element(By.CSS_SELECTOR, "table.history")
    header = [cell.text for cell in table.find_elements(By.CSS_SELECTOR, "thead th")]
    column = header.index("held-out")
    shown = {}
    for row in table.find_elements(By.CSS_SELECTOR, "tbody tr"):
        cells = row.find_elements(By.TAG_NAME, "td")
        link = cells[1].find_element(By.TAG_NAME, "a").get_dom_attribute("href")
        shown[link.rsplit("/", 1)[1]] = cells[column].text
    assert {pid: text for pid, text in shown.items() if text != "-"} == held
    summary = browser.find_element(By.CSS_SELECTOR, "h1 + p").text
    assert f"(held-out {max(held.values(), key=float)})" in summary


def test_web_program_source_with_script_shows_as_text(site: Site, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{site.url}/program/{site.hostile_id}")
    source = browser.find_element(By.CSS_SELECTOR, "pre.source").text
    assert "</pre><script>alert('xss')</script>" in source
    assert "<img src=x onerror=alert('img')>" in source
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "<script>alert('reply')</script>" in body  # the LLM reply, as text
    assert "<b onmouseover=alert('err')>boom</b>" in body  # the episode error, as text
    assert "<i>note</i>" in body
    assert "tokens in 120, out 40" in body and "latency 0.25 s" in body
    assert browser.find_elements(By.TAG_NAME, "script") == []
    assert browser.find_elements(By.CSS_SELECTOR, "main img, main b, main i") == []
    assert _no_alert(browser)
    assert _console_errors(browser) == []


def test_web_answers_nothing_but_get_and_head(site: Site) -> None:
    paths = ["/", f"/run/{site.run_id}", f"/program/{site.hostile_id}", "/no/such/page"]
    with httpx.Client(base_url=site.url, timeout=30) as client:
        for path in paths:
            for method in ("POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND"):
                response = client.request(method, path, content=b"x=1")
                assert response.status_code == 405, (method, path)
                assert response.headers["allow"] == "GET, HEAD"
        page = client.get(f"/run/{site.run_id}")
        head = client.head(f"/run/{site.run_id}")
        assert page.status_code == head.status_code == 200 and head.content == b""
        assert "script-src" not in page.headers["content-security-policy"]  # none allowed
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert client.get("/", headers={"Host": "attacker.example"}).status_code == 400


def test_web_replay_is_rendered_on_demand_and_cached(site: Site) -> None:
    with httpx.Client(base_url=site.url, timeout=REPLAY_DEADLINE_SECONDS) as client:
        first = client.get(f"/replay/{site.evaluation_id}/0.gif")
        assert first.status_code == 200 and first.headers["content-type"] == "image/gif"
        cached = list(site.cache_dir.glob(f"{site.evaluation_id}-0-*.gif"))
        assert len(cached) == 1 and cached[0].read_bytes() == first.content
        with Image.open(BytesIO(first.content)) as gif:
            assert gif.n_frames == 300 and gif.size == (320, 420 + 56)  # type: ignore[attr-defined]
        assert client.get(f"/replay/{site.evaluation_id}/0.gif").content == first.content
        missing = client.get(f"/replay/{site.untraced_id}/0.gif")
        assert missing.status_code == 409 and "no trace" in missing.text
        assert client.get("/replay/ffffffffffff/0.gif").status_code == 404
        assert client.get(f"/replay/{site.evaluation_id}/7.gif").status_code == 409


def test_web_binds_loopback_unless_remote_is_allowed_explicitly() -> None:
    assert check_host("127.0.0.1", False) == "" and check_host("::1", False) == ""
    with pytest.raises(UserError, match="--allow-remote"):
        check_host("0.0.0.0", False)
    assert "anyone who can reach" in check_host("0.0.0.0", True)


def test_web_allow_remote_admits_other_host_headers_and_only_then(
    site: Site, tmp_path: Path
) -> None:
    """`--allow-remote` reaches the site: a client that names the machine by another address
    is served. Without it (the module's server) the same request is refused."""
    remote = {"Host": "192.0.2.50:8613"}
    assert httpx.get(site.url + "/", headers=remote, timeout=30).status_code == 400
    with _serving(site.db, tmp_path / "cache", tmp_path / "serve.log", "--allow-remote") as url:
        page = httpx.get(f"{url}/run/{site.run_id}", headers=remote, timeout=30)
        assert page.status_code == 200 and site.run_id[:8] in page.text


def test_web_warns_before_binding_a_non_loopback_address(site: Site, capsys) -> None:
    """192.0.2.1 (TEST-NET-1) is no address of this machine: the warning comes first, then
    the bind fails with one clear line instead of uvicorn's log."""
    args = ["serve", "--db", str(site.db), "--host", "192.0.2.1", "--allow-remote"]
    assert main([*args, "--port", str(_free_port())]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("warning: serving on 192.0.2.1: anyone who can reach")
    assert lines[1].startswith("error: cannot serve on 192.0.2.1:")
    busy = socket.socket()
    with busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        assert main(["serve", "--db", str(site.db), "--port", str(taken)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: cannot serve on 127.0.0.1:{taken}: ")


def test_web_never_writes_the_database(site: Site) -> None:
    """Runs last in this module: every request above has been served by now."""
    assert _sha256(site.db) == site.db_sha256
    with Store.open(site.db, create=False) as store:
        assert len(store.history(site.run_id)) == len(site.program_ids)


# -- what each page shows, against what the store holds --------------------------------------


def _program_of(db: Path, evaluation_id: str) -> str:
    with Store.open(db, create=False) as store:
        return store.get_evaluation(evaluation_id).program_id


def test_web_program_page_embeds_the_replay_asked_for(site: Site, browser: Any) -> None:
    """ "watch" opens the replay inline on the program page (no script: a query parameter
    picks the episode); the image is the stored episode, frame for frame."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    program = _program_of(site.db, site.evaluation_id)
    browser.get(f"{site.url}/program/{program}")
    assert browser.find_elements(By.CSS_SELECTOR, "img.replay") == []  # only when asked
    watch = browser.find_element(
        By.CSS_SELECTOR, f"a[href^='/program/{program}?replay={site.evaluation_id}:0']"
    )
    watch.click()
    assert browser.current_url.endswith(f"?replay={site.evaluation_id}:0#replay")
    (image,) = browser.find_elements(By.CSS_SELECTOR, "tr.replay img.replay")
    WebDriverWait(browser, REPLAY_DEADLINE_SECONDS).until(
        lambda driver: driver.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth", image
        )
    )
    assert browser.execute_script("return arguments[0].naturalWidth", image) == 320
    assert _console_errors(browser) == []
    source = image.get_dom_attribute("src")
    assert source == f"/replay/{site.evaluation_id}/0.gif"
    with Store.open(site.db, create=False) as store:
        length = store.get_evaluation(site.evaluation_id).episodes[0]["length"]
    gif = httpx.get(site.url + source, timeout=REPLAY_DEADLINE_SECONDS)
    with Image.open(BytesIO(gif.content)) as frames:
        assert frames.n_frames == length  # type: ignore[attr-defined]
    for wrong in (f"{site.evaluation_id}:9", f"{site.untraced_id}:0", "nonsense"):
        page = httpx.get(f"{site.url}/program/{program}", params={"replay": wrong}, timeout=30)
        assert page.status_code == 404 and "no episode" in page.text, wrong


def test_web_run_page_curve_has_one_point_per_scored_program(site: Site, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    for run_id in (site.run_id, site.llm_run_id):
        with Store.open(site.db, create=False) as store:
            series = load_series(store, run_id)
        scored = sorted(p.program_id for p in series.points if p.score is not None)
        held = [p for p in series.points if p.heldout is not None]
        assert scored and held, run_id
        browser.get(f"{site.url}/run/{run_id}")
        dots = browser.find_elements(By.CSS_SELECTOR, "svg.curve a circle.score")
        links = browser.find_elements(By.CSS_SELECTOR, "svg.curve a")
        assert len(dots) == len(scored)
        assert sorted(a.get_dom_attribute("href").rsplit("/", 1)[1] for a in links) == scored
        assert len(browser.find_elements(By.CSS_SELECTOR, "svg.curve rect.heldout")) == len(held)
        assert browser.find_elements(By.CSS_SELECTOR, "svg.curve polyline.best")


def test_web_run_page_lists_the_budget_event(site: Site, browser: Any) -> None:
    """Every event but the per-proposal iterations is listed; a budget hit is highlighted."""
    from selenium.webdriver.common.by import By

    with Store.open(site.db, create=False) as store:
        stored = [(e.kind, e.message) for e in store.events(site.llm_run_id)]
    assert any(kind == "budget_hit" for kind, _ in stored), stored
    browser.get(f"{site.url}/run/{site.llm_run_id}")
    rows = browser.find_elements(By.CSS_SELECTOR, "table.events tbody tr")
    shown = [tuple(cell.text for cell in row.find_elements(By.TAG_NAME, "td"))[1:] for row in rows]
    assert shown == [event for event in stored if event[0] != "iteration"]
    (budget,) = [row for row in rows if row.find_elements(By.XPATH, "td[2][.='budget_hit']")]
    assert "notable" in budget.get_dom_attribute("class")


def test_web_program_page_shows_the_diff_feedback_and_llm_exchange(
    site: Site, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    with Store.open(site.db, create=False) as store:
        calls = [c for c in store.llm_calls(site.llm_run_id) if c.produced_program_id]
        call = calls[0]
        assert call.produced_program_id and call.parent_program_id
        child = store.get_program(call.produced_program_id)
        parent_id = call.parent_program_id
        built_on = store.program_llm_calls(parent_id)[1]
    assert child.parent_id == parent_id and call.cost and call.latency_seconds

    browser.get(f"{site.url}/program/{child.id}")
    added = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "pre.diff span.add")]
    changed = next(line for line in child.source.splitlines() if "scripted change" in line)
    assert "+" + changed in added
    (exchange,) = browser.find_elements(By.CSS_SELECTOR, "section.exchange")
    prompt, response = exchange.find_elements(By.TAG_NAME, "pre")
    assert prompt.get_attribute("textContent") == call.prompt
    assert response.get_attribute("textContent") == call.response
    summary = exchange.find_element(By.TAG_NAME, "p").text
    assert f"tokens in {call.tokens_in}, out {call.tokens_out}" in summary
    assert f"cost {call.cost:.6f}" in summary and f"latency {call.latency_seconds:.2f} s" in summary
    assert _console_errors(browser) == []

    browser.get(f"{site.url}/program/{parent_id}")
    feedback = browser.find_elements(By.CSS_SELECTOR, "details.exchange pre")
    assert built_on and len(feedback) == len(built_on)
    assert sorted(pre.get_attribute("textContent") for pre in feedback) == sorted(
        c.prompt for c in built_on
    )
    assert all("Feedback" in c.prompt for c in built_on)  # the feedback, inside the prompt


def test_web_episode_rows_hold_the_stored_values(site: Site, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    checked = 0
    with Store.open(site.db, create=False) as store:
        programs = {e.program_id for e in store.run_evaluations(site.run_id)}
        expected = {pid: store.evaluations(pid) for pid in programs}
    for program_id, evaluations in expected.items():
        browser.get(f"{site.url}/program/{program_id}")
        sections = browser.find_elements(By.CSS_SELECTOR, "section.evaluation")
        assert len(sections) == len(evaluations)
        for section, evaluation in zip(sections, evaluations, strict=True):
            assert evaluation.id[:8] in section.find_element(By.TAG_NAME, "h3").text
            rows = section.find_elements(By.CSS_SELECTOR, "table.episodes tbody tr:not(.detail)")
            shown = [[c.text for c in row.find_elements(By.TAG_NAME, "td")][1:5] for row in rows]
            assert shown == [
                [str(e["seed"]), e["status"], f"{float(e['return']):g}", str(e["length"])]
                for e in evaluation.episodes
            ]
            checked += len(rows)
    assert checked >= 4
