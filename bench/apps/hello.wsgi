"""Hello world: the ceiling of the HTTP side (mod_wsgi, Apache, wrk).

It reads the request body like the gateway does, so the only difference
from the gateway is the gateway's own work.
"""

BODY = b"Hello, world!\n"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def application(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length:
        environ["wsgi.input"].read(length)
    start_response("200 OK", HEADERS)
    return [BODY]
