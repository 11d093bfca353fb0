"""Schemathesis hooks for the contract tests (loaded through ``SCHEMATHESIS_HOOKS``).

The document marks some 5xx answers as ordinary outcomes of an operation
(``x-hutch-expected-errors``: an RPC with no responder, or none in time);
every other 5xx is still a server error.  A batch's body is NDJSON, which
the document describes as the array of its lines: ``ndjson`` writes an
array one item a line, and anything else as one line that is no message.
"""

import json

import schemathesis
from schemathesis.checks import not_a_server_error


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
