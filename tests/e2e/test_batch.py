"""Bulk publishing over real HTTP under mod_wsgi (``hutch serve``): the documented curl example runs
as docs/bulk-publishing.md shows it, and Apache lets a batch be larger than one message may be."""

import json
import os
import pathlib
import re
import subprocess

import pytest

from harness import amqp
from tests.e2e.client import FULL_KEY, MAX_BODY_BYTES, assert_error

pytestmark = [pytest.mark.e2e, pytest.mark.broker]

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "bulk-publishing.md"
DOC_URL = "http://localhost:8080"
DOC_EXCHANGE = "orders"


@pytest.fixture
def exchange():
    """A notify exchange with the consumer queue ``{exchange}.billing``, deleted afterwards."""
    name = amqp.unique("batch")
    yield name
    amqp.delete(exchanges=[name], queues=[f"{name}.billing"])


def shell_examples():
    """The doc's ``sh`` blocks, in order."""
    return re.findall(r"^```sh\n(.*?)^```$", DOC.read_text(), re.MULTILINE | re.DOTALL)


def test_the_documented_curl_example_runs_as_written(gateway, api, exchange):
    """The doc's first example, with only the gateway's address and a test's own exchange name."""
    example = shell_examples()[0]
    assert DOC_URL in example and f"/notify/{DOC_EXCHANGE}/batch" in example
    script = example.replace(DOC_URL, gateway.url).replace(f"/notify/{DOC_EXCHANGE}/", f"/notify/{exchange}/")
    assert api.put(f"/notify/{exchange}/queues/billing").status_code == 201

    done = subprocess.run(
        ["bash", "-c", script],
        env={**os.environ, "KEY": FULL_KEY},
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert (answer["accepted"], answer["failed"]) == (3, 0)
    assert answer["results"][0] == {"status": 202, "message_id": "order-1-shipped"}
    with amqp.channel() as ch:
        stored = [amqp.get_message(ch, f"{exchange}.billing") for _ in range(3)]
    assert [body for _, _, body in stored] == [b"order 1 shipped", b"\x00\x01\x02", b'{"order": 3}']
    assert stored[1][1].headers == {"source": "warehouse"}
    assert (stored[2][1].content_type, stored[2][1].correlation_id) == ("application/json", "c-3")


def test_a_batch_may_be_larger_than_one_message_under_apache(api, exchange):
    assert api.put(f"/notify/{exchange}/queues/billing").status_code == 201
    line = json.dumps({"body": "x" * 2000}).encode() + b"\n"
    body = line * (MAX_BODY_BYTES // len(line) + 100)  # over max_body_bytes + Apache's 64 KiB slack
    assert len(body) > MAX_BODY_BYTES + 64 * 1024

    response = api.post(
        f"/notify/{exchange}/batch", data=body, headers={"Content-Type": "application/x-ndjson"}
    )

    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == body.count(b"\n")
    assert amqp.queue_depth(f"{exchange}.billing") == body.count(b"\n")
    one = api.post(f"/notify/{exchange}", data=body)  # one message keeps its own limit
    assert_error(one, 413, "payload_too_large")


def test_a_chunked_batch_and_a_bad_line_over_http(api, exchange):
    assert api.put(f"/notify/{exchange}/queues/billing").status_code == 201
    chunks = iter([b'{"body": "a"}\n', b'{"body": "b"}\n'])
    response = api.post(f"/notify/{exchange}/batch", data=chunks)  # a generator: chunked
    assert response.status_code == 200 and response.json()["accepted"] == 2
    bad = api.post(f"/notify/{exchange}/batch", data=b'{"body": "c"}\n{"body": 1}\n')
    assert assert_error(bad, 400, "invalid_batch")["detail"].startswith("Line 2: ")
    assert amqp.queue_depth(f"{exchange}.billing") == 2
