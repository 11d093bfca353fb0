"""Raw WSGI calls into the full stack, the way a server makes them.

WebTest sets ``paste.throw_errors`` on every request, which turns
ErrorMiddleware off; these calls do not, so a crash shows as the 500 page a
client would get.  The environ is what ``wsgiref.util.setup_testing_defaults``
gives, plus the request's method, path, headers and body; header values are
native strings of latin-1 code points (PEP 3333), as Apache hands them over.
"""

import collections
import dataclasses
import io
import re
import wsgiref.util

STATUS_LINE = re.compile(r"[1-5][0-9][0-9] [\x20-\x7e]*")
TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 field name
FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")  # no CR, LF, NUL or other controls
TRACEBACK_MARKS = ("Traceback (most recent call last)", 'File "/', '.py", line ', "Error - <class")


class Counter:
    """How many requests went through ``call`` in this test run (reported at the end)."""

    requests = 0
    fuzzed = 0
    statuses = collections.Counter()  # of the fuzzed requests
    published = 0  # messages the fuzzed requests published, each checked against the contract

    @classmethod
    def fuzz(cls, result):
        cls.fuzzed += 1
        cls.statuses[result.status] += 1


@dataclasses.dataclass
class Result:
    status: int
    reason: str
    headers: list
    body: bytes
    errors: str  # what the stack wrote to wsgi.errors

    def header(self, name):
        values = [value for key, value in self.headers if key.lower() == name.lower()]
        return values[0] if values else None

    @property
    def text(self):
        return self.body.decode("latin-1")


def environ_key(header):
    """The CGI name a server gives ``header`` (``X-Amqp-Header-A`` -> ``HTTP_X_AMQP_HEADER_A``)."""
    name = header.upper().replace("-", "_")
    if name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        return name
    return "HTTP_" + name


def call(app, method="GET", path="/", headers=(), body=b"", scheme="http", script_name="/gateway", lint=True):
    """One request through ``app``; ``headers`` are (name, value) pairs as sent.

    ``lint`` checks what the app hands the server: a well-formed status line,
    header names that are tokens, values that cannot split a header (no CR,
    LF or other control character), one start_response, bytes in the body.
    (Not ``wsgiref.validate``: it also refuses names ending in ``-``, which
    HTTP allows and a responder's headers may produce.)
    """
    environ = {}
    wsgiref.util.setup_testing_defaults(environ)
    errors = io.StringIO()
    path, _, query = path.partition("?")
    environ.update(
        {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": script_name,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": scheme,
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": errors,
        }
    )
    if scheme == "https":
        environ["HTTPS"] = "on"
        environ["SERVER_PORT"] = "443"
    if body:
        environ["CONTENT_LENGTH"] = str(len(body))
    for name, value in headers:
        environ[environ_key(name)] = value
    started = []

    problems = []  # collected, not raised: ErrorMiddleware would turn an assertion into its 500 page

    def start_response(status, response_headers, exc_info=None):
        if lint:
            problems.extend(response_problems(status, response_headers, exc_info, started))
        started[:] = [status, response_headers]
        return lambda data: None

    iterable = app(environ, start_response)
    try:
        chunks = []
        for chunk in iterable:
            if lint and not isinstance(chunk, bytes):
                problems.append(f"the body yields {type(chunk)}")
            chunks.append(chunk)
        chunks = b"".join(chunks)
    finally:
        if hasattr(iterable, "close"):
            iterable.close()
    Counter.requests += 1
    assert not problems, f"{method} {path}: {problems}"
    status, response_headers = started
    code, _, reason = status.partition(" ")
    return Result(int(code), reason, list(response_headers), chunks, errors.getvalue())


def response_problems(status, headers, exc_info, started):
    if started and exc_info is None:
        yield "start_response called twice without exc_info"
    if not (isinstance(status, str) and STATUS_LINE.fullmatch(status)):
        yield f"bad status line {status!r}"
    for name, value in headers:
        if not (isinstance(name, str) and TOKEN.fullmatch(name)):
            yield f"bad header name {name!r}"
        if not (isinstance(value, str) and FIELD_VALUE.fullmatch(value)):
            yield f"{name}: bad value {value!r}"


def assert_no_traceback(result):
    for mark in TRACEBACK_MARKS:
        assert mark not in result.text, f"{result.status} body carries a traceback:\n{result.text[:2000]}"
