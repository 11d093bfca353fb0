"""Schemathesis hooks for the contract tests (loaded through ``SCHEMATHESIS_HOOKS``).

The document marks some 5xx answers as ordinary outcomes of an operation
(``x-hutch-expected-errors``: an RPC with no responder, or none in time);
every other 5xx is still a server error.  Likewise some 4xx answers depend on
the gateway's configuration, not on the request's shape
(``x-hutch-policy-refusals``: a push URL that ``push_allow`` refuses); every
other refusal of a schema-valid request still fails.  A batch's body is NDJSON,
which the document describes as the array of its lines: ``ndjson`` writes an
array one item a line, and anything else as one line that is no message.
"""

import json

import schemathesis
from schemathesis.checks import not_a_server_error, positive_data_acceptance


def _error_code(response):
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    return body.get("error") if isinstance(body, dict) else None


@schemathesis.check
def not_a_server_error_unless_documented_as_expected(ctx, response, case):
    """``not_a_server_error``, except for the error codes the operation lists as expected answers."""
    expected = case.operation.definition.raw.get("x-hutch-expected-errors", ())
    if response.status_code >= 500 and _error_code(response) in expected:
        return None
    return not_a_server_error(ctx, response, case)


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    if isinstance(value, list):
        text = "".join(json.dumps(item) + "\n" for item in value)
    else:  # not the array of lines the document asks for: one line that is no line object
        text = json.dumps([value]) + "\n"
    return text.encode()


@schemathesis.check
def positive_data_acceptance_unless_refused_by_policy(ctx, response, case):
    """``positive_data_acceptance``, except for the refusals the operation lists as the gateway's policy."""
    refusals = case.operation.definition.raw.get("x-hutch-policy-refusals", ())
    if 400 <= response.status_code < 500 and _error_code(response) in refusals:
        return None
    return positive_data_acceptance(ctx, response, case)
