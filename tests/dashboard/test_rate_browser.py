"""The dashboard's message-rate plot in a real browser: headless Chromium against the gateway under
``hutch serve`` (mod_wsgi and the event servers).

A burst of broadcasts must show in the plot's figures (messages in the window, the per-second
series, the rate now, the peak) and as bars whose count matches the series; the figures are read
from the plot's data- attributes and its text in one go, so they describe the same drawing.  History
replayed on open must land in the seconds it was published, not as a spike now.  Screenshots go to
artifacts/.
"""

import json
import time

import pytest
import requests
from selenium.webdriver.common.by import By

from harness import rabbitmqctl as broker

from .conftest import KEYS, bearer
from .test_browser import browser, messages, screenshot, server, state, wait_until  # noqa: F401 - fixtures

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

BURST = 40
RECENT_SECONDS = 5  # rateplot.js: the "now" rate averages over this many seconds
READ_PLOT = """
const plot = document.getElementById("rate-plot");
return {
  hidden: plot.hidden,
  rate: plot.getAttribute("data-rate"),
  peak: plot.getAttribute("data-peak"),
  total: plot.getAttribute("data-total"),
  series: plot.getAttribute("data-series"),
  now: plot.querySelector(".rate-now").textContent,
  summary: plot.querySelector(".rate-summary").textContent,
  bars: plot.querySelectorAll("svg rect.rate-bar").length,
  labels: Array.from(plot.querySelectorAll("svg text.rate-label")).map((node) => node.textContent),
  label: plot.querySelector("svg").getAttribute("aria-label"),
};
"""
CHART_WIDTHS = """
const svg = document.querySelector("#rate-plot svg");
return [svg.viewBox.baseVal.width, svg.clientWidth];
"""


def nice_top(peak):
    """rateplot.js's y axis: 1, 2, 5, 10, 20, 50 ... at or above the peak."""
    top = 1
    while top < peak:
        top = top * 5 // 2 if str(top)[0] == "2" else top * 2
    return top


def plot(driver):
    return driver.execute_script(READ_PLOT)


def series(driver):
    return [int(count) for count in plot(driver)["series"].split(",")]


def log_in(driver, url):
    driver.get(url)
    driver.find_element(By.ID, "api-key").send_keys(KEYS["viewer"][0])
    driver.find_element(By.CSS_SELECTOR, "#login button[value=login]").click()
    wait_until(driver, lambda: state(driver) == "live", "the indicator never showed live")


def broadcast(gateway, exchange, number):
    headers = {"Authorization": bearer("viewer"), "Content-Type": "application/json"}
    answer = requests.post(
        f"{gateway.url}/broadcast/{exchange}", data=json.dumps({"n": number}), headers=headers, timeout=10
    )
    assert answer.status_code == 202, answer.text


def test_the_rate_plot_shows_a_burst_of_broadcasts(server, browser, exchange):  # noqa: F811 - fixtures
    log_in(browser, f"{server.url}/dashboard/{exchange}")
    broker.wait_for_bindings(exchange, lambda queues: len(queues) >= 1)

    quiet = plot(browser)
    assert quiet["hidden"] is False  # the script took over the figure
    assert (quiet["total"], quiet["rate"], quiet["peak"]) == ("0", "0.0", "0")
    assert quiet["bars"] == 0 and quiet["now"] == "0 msg/s"

    session = requests.Session()
    headers = {"Authorization": bearer("viewer"), "Content-Type": "application/json"}
    for number in range(BURST):
        answer = session.post(
            f"{server.url}/broadcast/{exchange}", data=json.dumps({"n": number}), headers=headers, timeout=10
        )
        assert answer.status_code == 202, answer.text
    wait_until(browser, lambda: len(messages(browser)) == BURST, "the burst never reached the page")
    wait_until(browser, lambda: plot(browser)["total"] == str(BURST), "the plot never counted the burst")

    drawn = plot(browser)
    series = [int(count) for count in drawn["series"].split(",")]
    assert len(series) == 60 and sum(series) == BURST
    peak = int(drawn["peak"])
    assert peak == max(series) and peak >= 1
    assert drawn["bars"] == sum(1 for count in series if count)  # one bar per second that had messages
    rate = float(drawn["rate"])
    assert rate == pytest.approx(sum(series[-RECENT_SECONDS:]) / RECENT_SECONDS, abs=0.05)
    assert rate > 0  # the burst has only just arrived
    assert drawn["now"] == (f"{rate:g}" if rate < 10 else str(round(rate))) + " msg/s"
    assert drawn["summary"] == f"{BURST} messages in the last 60 s · peak {peak} msg/s"
    assert str(nice_top(peak)) in drawn["labels"]  # the y axis reaches the peak
    assert drawn["labels"][-3:] == ["-60 s", "-30 s", "now"]
    assert f"{BURST} in the last 60 seconds" in drawn["label"]
    screenshot(browser, "dashboard-rate.png")
    browser.set_window_size(390, 900)
    wait_until(browser, lambda: len(set(browser.execute_script(CHART_WIDTHS))) == 1, "the plot never fit")
    assert plot(browser)["total"] == str(BURST)
    screenshot(browser, "dashboard-rate-phone.png")


def test_history_replayed_on_open_lands_when_it_was_published(server, browser, history_exchange):  # noqa: F811
    earlier = 3  # the history the page replays (events_history_count in stream.ini)
    for number in range(earlier):
        broadcast(server, history_exchange, number)
    published = time.monotonic()
    time.sleep(4)  # so "now" and "when it was published" are whole seconds apart
    log_in(browser, f"{server.url}/dashboard/{history_exchange}")
    wait_until(browser, lambda: plot(browser)["total"] == str(earlier), "the plot never counted the history")
    replayed = series(browser)
    assert sum(replayed) == earlier
    seconds_ago = time.monotonic() - published
    assert sum(replayed[-2:]) == 0, (
        f"history plotted as new ({replayed[-6:]}, published {seconds_ago:.1f} s ago)"
    )

    for number in range(earlier, earlier + 2):
        broadcast(server, history_exchange, number)
    wait_until(
        browser, lambda: plot(browser)["total"] == str(earlier + 2), "the live messages were not counted"
    )
    assert sum(series(browser)[-RECENT_SECONDS:]) >= 2  # live: counted when they arrived
