"""`headstart lab` as a person uses it: Debian's Chromium driven by Playwright against the real server, the
packaged MiniLM and rotten-tomatoes at the smallest setting that still shows three curves.

Screenshots of the four views go to the test's folder, or to docs/ (the README's pictures) with
HEADSTART_SCREENSHOTS=docs (`make screenshots`).
"""

from __future__ import annotations

import http.client
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from headstart.lab.architecture import strip

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"  # Debian's package; `make test` installs it when missing


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: the README's pictures are taken at the lab's own defaults (HEADSTART_SCREENSHOTS=docs); CI uses a smaller setting
DOCS = os.environ.get("HEADSTART_SCREENSHOTS") == "docs"
SMALL = [] if DOCS else ["--test-limit", "100", "--max-length", "32", "--set", "min_steps=12"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lab")
    port = _free_port()
    cmd = [sys.executable, "-m", "headstart.cli", "lab", "rotten-tomatoes", "--port", str(port), "--out",
           str(folder / "runs"), *SMALL]
    log = open(folder / "lab.log", "w")  # noqa: SIM115 (open for the server's lifetime)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, cwd=folder)
    url = None
    end = time.time() + 180
    while time.time() < end and url is None:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            raise AssertionError(f"the lab did not start: {(folder / 'lab.log').read_text()[-2000:]}")
        found = re.search(r"http://127\.0\.0\.1:\d+/", line)
        url = found.group(0) if found else None
    assert url == f"http://127.0.0.1:{port}/"
    for _ in range(100):  # the URL is printed just before uvicorn binds
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    yield url, port, folder
    proc.terminate()
    proc.wait(30)
    log.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = ROOT / "docs" if DOCS else tmp_path_factory.mktemp("shots")
    folder.mkdir(exist_ok=True)
    return folder


def _set_slider(page, selector: str, value: int, release: bool = False) -> None:
    script = ("(el, [v, release]) => { el.value = String(v); el.dispatchEvent(new Event('input'));"
              " if (release) el.dispatchEvent(new Event('change')); }")
    page.eval_on_selector(selector, script, [value, release])


def _wait_all_done(page, timeout_s: float = 600) -> None:
    page.wait_for_function("() => { const c = [...document.querySelectorAll('.counter .state')];"
                           " return c.length === 3 && c.every((s) => s.textContent === 'done'); }",
                           timeout=timeout_s * 1000)


def _metrics(page) -> dict:
    return page.evaluate("() => JSON.parse(JSON.stringify(window.labMetrics))")


def test_the_race_in_chromium_three_curves_side_by_side_counters_monitor_and_curves(server, shots):
    from playwright.sync_api import sync_playwright

    url, port, _ = server
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: `make test` installs it (apt-get install chromium)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.wait_for_selector("body[data-ready='1']", timeout=60_000)

        # the page's controls: learning rates up to 1e-2 with the default's value said, early stopping with patience
        assert "0.01" in page.locator("#lr option").all_inner_texts()
        assert re.search(r"default \(\d", page.locator("#lr option").first.inner_text())
        assert page.locator("#early-stop").count() == 1 and page.locator("#patience").is_disabled()
        assert "min_steps" in page.locator("#lab-settings").inner_text()

        # sliders: the strip recolours and the pill updates at once, to the count of the run it sets
        blocks = page.locator("#strip .block:not(.head)")
        n = blocks.count()
        _set_slider(page, "#budget", 1)  # 8 labels per class
        _set_slider(page, "#frozen", n - 2)  # partial:2
        assert page.locator("#budget-value").inner_text() == "8"
        assert page.locator("#strip .block.trainable").count() == 2
        expected = strip("minilm-l6", "partial:2", 2, {"max_length": 64 if DOCS else 32})["trainable"]
        assert int(page.locator("#pill").get_attribute("data-count")) == expected
        assert f"{expected:,}" in page.locator("#pill").inner_text()
        page.locator("#controls").screenshot(path=str(shots / "lab-sliders.png"))

        # ▷ Train all three: a race, not a queue: every curve has its first point before any run ends
        page.click("#train-all")
        page.wait_for_function("() => Object.keys(window.labMetrics.firstPoint).length === 3", timeout=300_000)
        if DOCS:  # the README's picture: the race well under way
            page.wait_for_function("() => [...document.querySelectorAll('.counter .phase')].some("
                                   "(p) => /epoch (1\\d|[2-9]\\d)/.test(p.textContent))", timeout=300_000)
        page.screenshot(path=str(shots / "lab-race.png"), full_page=True)  # the race mid-way
        _wait_all_done(page)
        m = _metrics(page)
        assert max(m["firstPoint"].values()) < min(m["endedAt"].values())
        for key, last in m["lastLive"].items():  # each counter's final value is its last live one
            assert abs(m["ended"][key] - last) < 1.0, (key, last, m["ended"][key])
        legend = " ".join(page.locator("#race-chart .u-legend .u-series").all_inner_texts())
        assert "chance" in legend and "partial:2" in legend and "probe" in legend and "scratch-small" in legend
        assert len(re.findall(r"\d\.\d{3}", legend)) >= 6  # every drawn series' value, without hovering
        assert "on test" in page.locator("#race-story").inner_text()
        counters = page.locator(".counter .meta").all_inner_texts()
        assert all("Δθ" in t and "test" in t for t in counters)

        # another learning rate: the trained fine-tune stays on the chart as a faded overlay, which can be cleared
        page.select_option("#lr", "0.001")
        page.wait_for_function("() => [...document.querySelectorAll('#race-chart .u-legend .u-series')]"
                               ".some((s) => s.textContent.includes('earlier: partial:2'))")
        assert page.locator("#clear-overlays").is_visible()
        page.click("#clear-overlays")
        assert "earlier:" not in " ".join(page.locator("#race-chart .u-legend .u-series").all_inner_texts())
        page.select_option("#lr", "default")

        # the budget slider asks before it races, then every budget trained shows together
        _set_slider(page, "#budget", 0, release=True)  # 4 labels per class
        page.wait_for_selector("#confirm:not([hidden])")
        assert "Race at 4 labels per class?" in page.locator("#confirm-text").inner_text()
        page.click("#confirm-yes")
        _wait_all_done(page)
        page.wait_for_function("() => document.querySelectorAll('#budgets-chart .u-legend .u-series').length >= 4")

        # the training monitor: losses per epoch, the best epoch marked, why it stopped, what was restored
        page.click("button[data-view='monitor']")
        page.wait_for_function("() => /weights/.test(document.querySelector('#monitor-status').textContent)")
        status = page.locator("#monitor-status").inner_text()
        assert re.search(r"epoch \d+'s weights", status)
        page.screenshot(path=str(shots / "lab-monitor.png"), full_page=True)

        # learning curves and the verdict over every run of this folder
        page.click("button[data-view='curves']")
        page.wait_for_function("() => document.querySelectorAll('#curves-table tr').length >= 7")
        assert "pretraining" in page.locator("#verdict").inner_text().lower()
        assert page.locator("#recommendation li").count() >= 2
        page.screenshot(path=str(shots / "lab-curves.png"), full_page=True)

        # moving back to a trained setting shows it from the store, without training
        page.click("button[data-view='race']")
        _set_slider(page, "#budget", 1)
        page.wait_for_function("() => document.querySelector('#race-note').textContent.includes('3 of 3 runs stored')")
        browser.close()

    for name in ("lab-sliders", "lab-race", "lab-monitor", "lab-curves"):
        assert (shots / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # a path trick straight on the wire is refused, and nothing outside the package's assets is served
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest("GET", "/assets/../../../pyproject.toml", skip_accept_encoding=True)
    conn.endheaders()
    response = conn.getresponse()
    assert response.status == 400 and b"refused" in response.read()
