"""What users write without Hutch: one pika connection per request.

POST /.../{exchange} declares the transient fanout exchange the way the
seed's broadcast idiom does and publishes the body to it; GET answers 200 so
the runner can tell the server is up.
"""

import pika

PARAMETERS = pika.URLParameters("amqp://guest:guest@127.0.0.1:5672/%2F")


def application(environ, start_response):
    if environ["REQUEST_METHOD"] != "POST":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"naive\n"]
    exchange = environ.get("PATH_INFO", "").rstrip("/").rsplit("/", 1)[-1]
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    connection = pika.BlockingConnection(PARAMETERS)
    try:
        channel = connection.channel()
        channel.exchange_declare(exchange, "fanout", durable=False, auto_delete=True)
        channel.basic_publish(exchange, "", body)
    finally:
        connection.close()
    start_response("202 Accepted", [("Content-Type", "text/plain")])
    return [b"published\n"]
