"""`evocade serve` end to end: the real server process, a real headless Chromium (Debian's
`chromium` + `chromium-driver`, driven by selenium), a database from a real run.

The database copy gets hostile rows first (a program source with `<script>`, an LLM reply and
an episode error with HTML in them), as a misbehaving LLM would leave them.
"""

from __future__ import annotations

import hashlib
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

from engine.errors import UserError
from engine.web.app import check_host
from storage import LlmExchange, Store
from storage.encode import holdout_env_key
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
    port = _free_port()
    cache_dir = base / "cache"
    log = (base / "serve.log").open("w")
    args = [sys.executable, "-m", "engine.cli", "serve", "--db", str(db), "--port", str(port)]
    server = subprocess.Popen([*args, "--cache-dir", str(cache_dir)], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_DEADLINE_SECONDS
        while True:
            assert server.poll() is None, (base / "serve.log").read_text()
            try:
                if httpx.get(url + "/", timeout=10).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
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
        )
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


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
    assert len(rows) == 1
    assert rows[0].find_elements(By.CSS_SELECTOR, "svg.spark polyline")


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


def test_web_never_writes_the_database(site: Site) -> None:
    """Runs last in this module: every request above has been served by now."""
    assert _sha256(site.db) == site.db_sha256
    with Store.open(site.db, create=False) as store:
        assert len(store.history(site.run_id)) == len(site.program_ids)


def test_web_binds_loopback_unless_remote_is_allowed_explicitly() -> None:
    assert check_host("127.0.0.1", False) == "" and check_host("::1", False) == ""
    with pytest.raises(UserError, match="--allow-remote"):
        check_host("0.0.0.0", False)
    assert "anyone who can reach" in check_host("0.0.0.0", True)
