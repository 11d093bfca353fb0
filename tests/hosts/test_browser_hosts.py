"""The dashboard in headless Chromium through HAProxy over two gateway hosts.

Every page load and event-stream connection may go to either host: the
login holds on both (one session in Redis), the page goes live and shows a
broadcast, and after the browser logs out, its session cookie replayed by
another client gets the login form.
"""

import pytest
import requests
from selenium.webdriver.common.by import By

from tests.dashboard.test_browser import messages, shown_bodies, state, wait_until

from .conftest import WATCHER_KEY
from .test_hosts import LOGIN_FORM, broadcast

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.redis]


def test_a_browser_logged_in_through_haproxy_is_served_by_both_hosts_and_logs_out_everywhere(
    hosts,
    browser,
    history_exchange,
):
    exchange = history_exchange
    browser.get(f"{hosts.url}/dashboard/{exchange}")
    browser.find_element(By.ID, "api-key").send_keys(WATCHER_KEY)
    browser.find_element(By.CSS_SELECTOR, "#login button[value=login]").click()
    wait_until(browser, lambda: state(browser) == "live", "the page never went live")
    cookie = browser.get_cookie("hutch_session")["value"]

    served = set()
    for _ in range(10):  # the browser's session cookie, through HAProxy: both hosts know it
        answer = requests.get(
            f"{hosts.url}/dashboard/{exchange}", cookies={"hutch_session": cookie}, timeout=10
        )
        assert answer.status_code == 200 and LOGIN_FORM not in answer.text
        served.add(answer.headers["X-Served-By"])
        if served == {"a", "b"}:
            break
    assert served == {"a", "b"}
    for _ in range(3):  # the page, its ticket and its stream land on either host: live each time
        browser.refresh()
        wait_until(browser, lambda: state(browser) == "live", "the page did not go live again")

    broadcast(hosts.url, exchange, b"seen in the browser")
    wait_until(browser, lambda: "seen in the browser" in shown_bodies(browser), "the broadcast never showed")
    assert len(messages(browser)) >= 1

    browser.find_element(By.CSS_SELECTOR, "#logout button[value=logout]").click()
    wait_until(
        browser, lambda: browser.find_elements(By.ID, "login"), "logging out did not show the login form"
    )
    for host in (hosts.a, hosts.b):  # the saved cookie, replayed on each host: the login form
        replay = requests.get(f"{host.url}/dashboard/", cookies={"hutch_session": cookie}, timeout=10)
        assert replay.status_code == 200 and LOGIN_FORM in replay.text
