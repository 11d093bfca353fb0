"""The browsable API reference in a real browser: headless Chromium against ``hutch serve``.

The page at ``/reference`` (under the mount point) must render every operation of the gateway's
own ``/openapi.json`` with nothing but the gateway's files, under the page's Content-Security-Policy
(a refused script or style would show in the browser's log), and "Try it out" must reach the
gateway.  A screenshot goes to artifacts/.
"""

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from .conftest import HERE, PREFIX, chromium

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

ARTIFACTS = HERE.parents[1] / "artifacts"
WAIT = 30


@pytest.fixture
def browser():
    with chromium(width=1200, browser_log=True) as driver:
        yield driver


def operations(document):
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "put", "post", "delete", "patch", "head", "options")
    }


def rendered(driver):
    """(METHOD, path) of every operation block Swagger UI drew."""
    found = set()
    for block in driver.find_elements(By.CSS_SELECTOR, ".opblock"):
        method = block.find_element(By.CSS_SELECTOR, ".opblock-summary-method").text.strip()
        path = block.find_element(By.CSS_SELECTOR, ".opblock-summary-path").get_attribute("data-path")
        found.add((method, path))
    return found


def test_the_reference_renders_every_operation_under_the_pages_policy(stream_server, browser):
    server = stream_server
    document = requests.get(f"{server.url}/openapi.json", timeout=10).json()
    expected = operations(document)
    assert ("GET", "/reference") in expected and ("POST", "/broadcast/{exchange}") in expected

    browser.get(f"{server.url}/reference")
    WebDriverWait(browser, WAIT).until(
        lambda driver: rendered(driver) == expected, message="Swagger UI never showed every operation"
    )
    assert document["info"]["title"] in browser.find_element(By.CSS_SELECTOR, ".info .title").text
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "reference.png"))

    # "Try it out" on GET /health: Swagger UI calls this gateway (the document's servers entry).
    health = browser.find_element(By.CSS_SELECTOR, "#operations-operations-health")
    health.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
    WebDriverWait(browser, WAIT).until(lambda _d: health.find_elements(By.CSS_SELECTOR, ".try-out__btn"))
    health.find_element(By.CSS_SELECTOR, ".try-out__btn").click()
    health.find_element(By.CSS_SELECTOR, ".execute").click()
    WebDriverWait(browser, WAIT).until(
        lambda _d: health.find_elements(By.CSS_SELECTOR, ".live-responses-table tbody .response-col_status"),
        message="Try it out never showed an answer",
    )
    status = health.find_element(By.CSS_SELECTOR, ".live-responses-table tbody .response-col_status").text
    assert status.strip().startswith("200"), status
    assert f"{PREFIX}/health" in health.find_element(By.CSS_SELECTOR, ".request-url").text

    log = browser.get_log("browser")
    refused = [entry["message"] for entry in log if "Content Security Policy" in entry["message"]]
    assert refused == []
    errors = [entry["message"] for entry in log if entry["level"] == "SEVERE"]
    assert errors == []
