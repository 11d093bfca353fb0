"""The dashboard in a real browser: headless Chromium against ``hutch serve`` (mod_wsgi and the event
servers behind one port).

A viewer logs in and sees the exchange's history at once (the last ``events_history_count``
messages, newest first); broadcasts from outside appear live in the DOM (JSON pretty-printed, text
as text, binary summarised); a message sent with the page's own form appears too.  After the stream
is cut (the whole gateway stops) the indicator shows "reconnecting"; a message that reaches the
exchange meanwhile is kept by its history stream, and once the gateway is back the page is "live"
again and shows it, with no gap.  Screenshots go to artifacts/.
"""

import json
import pathlib

import pika
import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from harness import amqp
from harness.server import GatewayServer
from hutch.amqp.history import HistoryPolicy

from .conftest import HERE, KEYS, PREFIX, bearer, chromium, start_server

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

ARTIFACTS = HERE.parents[1] / "artifacts"
WAIT = 20


@pytest.fixture
def server():
    gateway = start_server("stream.ini")
    yield gateway
    gateway.stop()
    gateway.cleanup()


@pytest.fixture
def browser():
    with chromium(width=1000) as driver:
        yield driver


def state(driver):
    return driver.find_element(By.ID, "status").get_attribute("data-state")


def wait_until(driver, condition, what, timeout=WAIT):
    WebDriverWait(driver, timeout).until(lambda _driver: condition(), message=what)


def messages(driver):
    return driver.find_elements(By.CSS_SELECTOR, "#messages li.message")


def follow_label(driver):
    return driver.find_element(By.CSS_SELECTOR, "#follow-toggle button").text


def shown_bodies(driver):
    return [item.find_element(By.CSS_SELECTOR, "pre").text for item in messages(driver)]


def broadcast(server, exchange, body, content_type, **headers):
    headers = {"Authorization": bearer("viewer"), "Content-Type": content_type, **headers}
    answer = requests.post(f"{server.url}/broadcast/{exchange}", data=body, headers=headers, timeout=10)
    assert answer.status_code == 202, answer.text
    return answer.json()["message_id"]


def screenshot(driver, name):
    ARTIFACTS.mkdir(exist_ok=True)
    path = pathlib.Path(ARTIFACTS / name)
    driver.save_screenshot(str(path))
    return path


def test_the_dashboard_shows_history_then_live_broadcasts_and_resumes_after_a_cut(
    server, browser, history_exchange
):
    exchange = history_exchange
    for n in range(5):  # before anyone watches: kept by the exchange's history stream
        broadcast(server, exchange, f"earlier {n}", "text/plain")
    browser.get(f"{server.url}/dashboard/{exchange}")
    screenshot(browser, "dashboard-login.png")
    browser.find_element(By.ID, "api-key").send_keys(KEYS["viewer"][0])
    browser.find_element(By.CSS_SELECTOR, "#login button[value=login]").click()
    wait_until(browser, lambda: state(browser) == "live", "the indicator never showed live")
    assert browser.current_url.endswith(f"{PREFIX}/dashboard/{exchange}")
    # history on open: the last events_history_count (3), newest first
    wait_until(browser, lambda: len(messages(browser)) == 3, "the history never appeared")
    assert shown_bodies(browser) == ["earlier 4", "earlier 3", "earlier 2"]
    screenshot(browser, "dashboard-history.png")

    score = {"team": "home", "score": [1, 0]}
    source = {"X-Amqp-Header-Source": "e2e"}
    first = broadcast(server, exchange, json.dumps(score), "application/json", **source)
    hostile = "<script>document.title='owned'</script> goal!"
    second = broadcast(server, exchange, hostile, "text/plain")
    third = broadcast(server, exchange, bytes(range(200)), "application/octet-stream")
    wait_until(browser, lambda: len(messages(browser)) == 6, "three live messages never appeared")

    binary, text, structured = messages(browser)[:3]
    assert [item.find_element(By.CSS_SELECTOR, ".mid").text for item in (binary, text, structured)] == [
        f"id {third}",
        f"id {second}",
        f"id {first}",
    ]
    ids = [int(item.get_attribute("data-id")) for item in messages(browser)]
    assert ids == sorted(ids, reverse=True)  # event ids are the stream's offsets
    assert structured.find_element(By.CSS_SELECTOR, "pre").text == json.dumps(score, indent=2)
    assert structured.find_element(By.CSS_SELECTOR, ".type").text == "application/json"
    headers = structured.find_elements(By.CSS_SELECTOR, "dl.headers dt, dl.headers dd")
    assert [cell.text for cell in headers] == ["source", "e2e"]
    assert text.find_element(By.CSS_SELECTOR, "pre").text == hostile  # shown, not run
    assert browser.find_elements(By.CSS_SELECTOR, "#messages script") == []
    assert browser.title != "owned"
    assert binary.find_element(By.CSS_SELECTOR, "pre").text.startswith("00 01 02 03")
    assert "binary, 200 B" in binary.find_element(By.CSS_SELECTOR, ".note").text

    # the page's own form (sent by its script: the page stays connected)
    browser.find_element(By.CSS_SELECTOR, "details.publish summary").click()
    content_type = browser.find_element(By.ID, "content-type")
    content_type.clear()
    content_type.send_keys("text/plain; charset=utf-8")
    browser.find_element(By.ID, "message-body").send_keys("sent from the page")
    browser.find_element(By.CSS_SELECTOR, "#publish button[type=submit]").click()
    wait_until(browser, lambda: len(messages(browser)) == 7, "the page's own broadcast never appeared")
    assert browser.find_element(By.ID, "publish-status").text.startswith("sent ")
    assert messages(browser)[0].find_element(By.CSS_SELECTOR, "pre").text == "sent from the page"
    assert "app_id hutch-dashboard" in messages(browser)[0].find_element(By.CSS_SELECTOR, ".meta").text
    screenshot(browser, "dashboard-live.png")

    # cut the stream: the gateway goes away; a message reaches the exchange meanwhile
    port = server.port
    server.stop()
    wait_until(browser, lambda: state(browser) == "reconnecting", "the indicator never showed reconnecting")
    screenshot(browser, "dashboard-reconnecting.png")
    with amqp.channel() as channel:
        text_plain = pika.BasicProperties(content_type="text/plain")
        channel.basic_publish(exchange, "", b"while the gateway was down", properties=text_plain)
    again = GatewayServer(HERE / "stream.ini", prefix=PREFIX, processes=1, threads=6)
    again.port = port
    try:
        again.start()
        wait_until(browser, lambda: state(browser) == "live", "the indicator never recovered", timeout=60)
        wait_until(
            browser, lambda: len(messages(browser)) == 8, "the missed message never appeared", timeout=30
        )
        assert shown_bodies(browser)[0] == "while the gateway was down"
        after = broadcast(again, exchange, b'{"after": "the cut"}', "application/json")
        wait_until(browser, lambda: len(messages(browser)) == 9, "no message after the cut")
        assert messages(browser)[0].find_element(By.CSS_SELECTOR, ".mid").text == f"id {after}"
        # resumed exactly from the last event id: nothing lost, nothing twice, so no gap
        assert browser.find_elements(By.CSS_SELECTOR, "#messages li.gap") == []
        assert len(set(shown_bodies(browser))) == 9
        screenshot(browser, "dashboard-recovered.png")
        browser.set_window_size(390, 900)
        screenshot(browser, "dashboard-phone.png")
        browser.set_window_size(1000, 1000)

        # following happens in the background: the messages on screen stay
        shown = len(messages(browser))
        browser.find_element(By.CSS_SELECTOR, "#follow-toggle button").click()
        wait_until(browser, lambda: follow_label(browser) == "Unfollow", "the follow button never flipped")
        assert len(messages(browser)) == shown
        browser.get(f"{again.url}/dashboard/")
        assert [link.text for link in browser.find_elements(By.CSS_SELECTOR, ".exchange-link")] == [exchange]
        screenshot(browser, "dashboard-index.png")
    finally:
        again.stop()
        again.cleanup()


def test_after_the_history_is_made_anew_the_page_forgets_its_ids_and_shows_what_comes(
    server, browser, history_exchange
):
    """Offsets start again at 0 in a new history stream: a page that carried its last id, or the ids
    it has shown, across the ``reset`` would skip or hide the new messages."""
    exchange = history_exchange
    for n in range(3):
        broadcast(server, exchange, f"old {n}", "text/plain")
    browser.get(f"{server.url}/dashboard/{exchange}")
    browser.find_element(By.ID, "api-key").send_keys(KEYS["viewer"][0])
    browser.find_element(By.CSS_SELECTOR, "#login button[value=login]").click()
    wait_until(browser, lambda: len(messages(browser)) == 3, "the history never appeared")
    old_ids = {item.get_attribute("data-id") for item in messages(browser)}
    amqp.delete(queues=[HistoryPolicy.queue(exchange)])  # an operator deletes the history stream
    stored = f"return sessionStorage.getItem('hutch.lastEventId.{exchange}')"
    wait_until(browser, lambda: not browser.execute_script(stored), "the page kept its last id")
    wait_until(browser, lambda: state(browser) == "live", "the page never reconnected")
    for n in range(2):
        broadcast(server, exchange, f"new {n}", "text/plain")
    wait_until(browser, lambda: len(messages(browser)) == 5, "the new history's messages never appeared")
    assert shown_bodies(browser)[:2] == ["new 1", "new 0"]
    new_ids = {item.get_attribute("data-id") for item in messages(browser)[:2]}
    assert new_ids & old_ids, "the new stream's offsets should repeat the old ones (else this proves nothing)"
