"""GET /metrics: the Prometheus text exposition of every process of this gateway.

With API keys on it needs the ``metrics`` permission; ``hutch.metrics``
holds the definitions and collects across processes.
"""

from webob import Response

from hutch import metrics
from hutch.web.http import Route, Routes, operation


@operation("metrics")
def scrape(request, gateway):
    body, content_type = metrics.exposition(request.headers.get("Accept", ""))
    return Response(body=body, headerlist=[("Content-Type", content_type), ("Cache-Control", "no-store")])


application = Routes(Route("", permission="metrics", GET=scrape))
