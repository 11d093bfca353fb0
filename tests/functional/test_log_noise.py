"""Normal outcomes leave a healthy gateway's log quiet: no pika WARNING for an expected channel close."""

import logging


def warnings_of(caplog):
    return [record for record in caplog.records if record.levelno >= logging.WARNING]


def test_first_registration_of_a_queue_logs_no_warning(client, amqp, exchange, caplog):
    amqp.track(queues=[f"{exchange}.quiet"])
    with caplog.at_level(logging.INFO):
        client.put(f"/notify/{exchange}/queues/quiet", status=201)
    assert warnings_of(caplog) == []


def test_no_responder_logs_no_warning(client, exchange, caplog):
    with caplog.at_level(logging.INFO):
        client.post(f"/rpc/{exchange}/nobody", b"x", status=503)
    assert warnings_of(caplog) == []


def test_a_clash_is_answered_409_without_a_warning(client, amqp, exchange, caplog):
    client.post(f"/broadcast/{exchange}", b"", status=202)  # transient fanout
    with caplog.at_level(logging.INFO):
        client.put(f"/notify/{exchange}/queues/clash", status=409)  # asks for a durable one
    assert warnings_of(caplog) == []
