"""The gateway against its own OpenAPI document, with a schema-driven tester (schemathesis).

Schemathesis runs as a user runs it (``schemathesis run``) against the
gateway under ``hutch serve``, reading ``/openapi.json`` from it, with a key
that may do everything, so the requests reach the real routes.  Every
operation but the event stream (an answer that lasts ``events_max_lifetime``)
gets the document's examples, coverage cases (boundary and invalid values,
every undeclared method such as TRACE) and fuzzed cases, valid and invalid.
Every check applies: no server error (but the answers the document lists in
``x-hutch-expected-errors``, hooks.py), a documented status, content type,
headers and body schema, invalid requests refused, valid ones accepted,
405 with ``Allow`` for an undeclared method, no answer without the key.

Bounded for CI: a fixed number of fuzzed cases per operation, deterministic
generation (the same cases on every run), one worker.
"""

import os
import pathlib
import subprocess
import sys

import pytest

from .conftest import KEY

pytestmark = [pytest.mark.e2e, pytest.mark.broker, pytest.mark.contract]

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCHEMATHESIS = pathlib.Path(sys.executable).with_name("schemathesis")
EXAMPLES = 25  # fuzzed cases per operation, on top of the examples and coverage cases
# Every check that judges one answer (the stateful ones need a stateful phase).  The server-error
# check is the hooks' version, which knows the document's expected answers; naming it here makes
# the run refuse to start without the hooks.
CHECKS = [
    "not_a_server_error_unless_documented_as_expected",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "positive_data_acceptance_unless_refused_by_policy",
    "missing_required_header",
    "unsupported_method",
    "allow_header_conformance",
    "ignored_auth",
]
RUN_TIMEOUT = 600  # the run takes well under a minute; a hang must still end


def schemathesis_run(gateway, workdir, *arguments):
    command = [
        str(SCHEMATHESIS), "run", gateway.url + "/openapi.json",
        "--header", f"Authorization: Bearer {KEY}",
        "--checks", ",".join(CHECKS),
        "--exclude-path", "/events/{exchange}",
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", str(EXAMPLES),
        "--generation-deterministic",
        "--workers", "1",
        "--request-timeout", "30",
        "--no-color",
        *arguments,
    ]  # fmt: skip
    environment = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.contract.hooks",
        "PYTHONPATH": str(ROOT),
        "COLUMNS": "120",
    }
    # in a folder of its own: schemathesis keeps a cache (.schemathesis/) where it runs
    return subprocess.run(
        command,
        cwd=workdir,
        env=environment,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )


def summary(output):
    return output[output.rfind("SUMMARY") :] if "SUMMARY" in output else output[-3000:]


def test_the_gateway_answers_as_its_document_says(contract_gateway, tmp_path):
    result = schemathesis_run(contract_gateway, tmp_path)
    output = result.stdout + result.stderr
    print(summary(output))
    assert result.returncode == 0, output[-20000:]
    assert "passed" in output, output[-3000:]  # cases were generated and run
