"""HTTP helpers for the end-to-end tests: the gateway's API with a key, and error checks.

``Api`` checks every error response it sees: never a Python traceback.
"""

import requests

FULL_KEY = "e2e-full-access-key-0123456789"
LIMITED_KEY = "e2e-limited-key-0123456789"  # broadcast:t.* only
MAX_BODY_BYTES = 1048576  # test.ini leaves the default
RPC_MAX_TIMEOUT = 10  # test.ini
PREFIX = "/gateway"  # where conftest mounts the gateway
TRACEBACK_MARKS = ("Traceback (most recent call last)", 'File "/', '.py", line ')


def assert_no_traceback(response):
    text = response.content.decode("utf-8", "replace")
    for mark in TRACEBACK_MARKS:
        assert mark not in text, f"{response.status_code} body carries a traceback:\n{text[:2000]}"


def assert_error(response, status, code):
    """The contract's JSON error: ``{"error": code, "detail": text}`` with ``status``."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    body = response.json()
    assert body["error"] == code, body
    assert isinstance(body["detail"], str) and body["detail"]
    return body


class Api:
    """requests against the gateway; paths are relative to the mount point."""

    def __init__(self, base_url, key=FULL_KEY):
        self.base_url = base_url
        self.key = key
        self.seen_errors = 0

    def request(self, method, path, headers=None, timeout=30, **kwargs):
        headers = dict(headers or {})
        if self.key is not None:
            headers.setdefault("Authorization", f"Bearer {self.key}")
        response = requests.request(method, self.base_url + path, headers=headers, timeout=timeout, **kwargs)
        if response.status_code >= 400:
            assert_no_traceback(response)
            self.seen_errors += 1
        return response

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path, **kwargs):
        return self.request("POST", path, **kwargs)

    def put(self, path, **kwargs):
        return self.request("PUT", path, **kwargs)
