"""Bulk publishing: ``POST /broadcast/{exchange}/batch`` and ``POST /notify/{exchange}/batch``.

The batch is checked whole first (``hutch.web.batch``); then the lines' keys are
claimed (``hutch.web.idempotency``), every line still to publish goes out in
one pipelined send, and the answer lists each line's outcome in order.  A
line is 202 only after the broker's confirm; a line the broker did not
confirm is 503, so after a lost connection every line is either confirmed or
reported failed, never unknown.  Where nothing could be sent (the broker is
unreachable or blocked, the exchange has another type, the idempotency store
is down) the whole request fails as one message would, and nothing was
published.
"""

import json

from hutch.errors import HutchError, IdempotencyKeyReused
from hutch.web.batch import parse_batch
from hutch.web.http import json_response, read_body
from hutch.web.idempotency import Claim, fingerprint_of


def publish_batch(request, gateway, idiom, exchange):
    """The batch's answer: 200 with one result a line, ``accepted`` and ``failed``."""
    settings = gateway.settings
    environ = request.environ
    body = read_body(environ, settings.max_batch_bytes)
    lines = parse_batch(body, settings.max_batch_messages, persistent=idiom == "notify")
    results = [None] * len(lines)
    keyed, repeats = _keys(lines) if gateway.idempotency.enabled else ({}, {})
    claims = {}
    if keyed:
        for index, outcome in gateway.idempotency.claim_each(environ, idiom, exchange, keyed).items():
            if isinstance(outcome, Claim):
                claims[index] = outcome
            elif isinstance(outcome, HutchError):
                results[index] = _failed(outcome, lines[index].message.message_id)
            else:
                results[index] = _replayed(outcome)
    todo = [index for index, result in enumerate(results) if result is None and index not in repeats]
    try:
        outcomes = (
            gateway.broker.publish_batch(idiom, exchange, [lines[i].message for i in todo]) if todo else []
        )
    except BaseException:
        gateway.idempotency.settle_each(claims, {})
        raise
    answers = {}
    broadcast = idiom == "broadcast"
    for index, outcome in zip(todo, outcomes, strict=True):
        message_id = lines[index].message.message_id
        if outcome.__class__ is not bool:  # the HutchError it failed with
            results[index] = _failed(outcome, message_id)
            continue
        result = {"status": 202, "message_id": message_id}
        if broadcast:
            result["routed"] = outcome
        results[index] = result
        if index in claims:  # what one message's 202 says: a line and a single request retry each other
            single = {"message_id": message_id, "exchange": exchange}
            if broadcast:
                single["routed"] = outcome
            answers[index] = (202, json.dumps(single, separators=(",", ":")) + "\n")
    gateway.idempotency.settle_each(claims, answers)
    for index, first in repeats.items():
        results[index] = _repeated(results[first], lines[first].message, lines[index].message)
    accepted = sum(1 for result in results if result["status"] == 202)
    return json_response(200, {"results": results, "accepted": accepted, "failed": len(results) - accepted})


def _keys(lines):
    """``({index: (key, message)}, {index: index of the first line with its key})``: a key repeated
    in the batch is published once, by its first line; the others answer as retries would."""
    keyed, repeats, first_of = {}, {}, {}
    for index, line in enumerate(lines):
        if line.key is not None:
            first = first_of.setdefault(line.key, index)
            if first == index:
                keyed[index] = (line.key, line.message)
            else:
                repeats[index] = first
    return keyed, repeats


def _repeated(first_result, first, message):
    """A line repeating an earlier line's key: the earlier answer (``replayed`` if it was a 202), or
    422 for another body or content type, as for a retried request."""
    if fingerprint_of(message) != fingerprint_of(first):
        return _failed(IdempotencyKeyReused(), message.message_id)
    if first_result["status"] == 202:
        return {**first_result, "replayed": True}
    return dict(first_result)


def _failed(error, message_id):
    return {"status": error.status, "message_id": message_id, "error": error.code, "detail": error.detail}


def _replayed(answer):
    """A stored answer (of a line, or of one message with the same key) as a line's result."""
    first = json.loads(answer["body"])
    result = {"status": answer["status"], "message_id": first.get("message_id")}
    if "routed" in first:
        result["routed"] = first["routed"]
    result["replayed"] = True
    return result
