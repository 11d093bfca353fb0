"""GET /static/{name}: the dashboard's own stylesheet and script, and nothing else.

Only the names in ``ASSETS`` are ever served, from ``templates/static`` of
the configured templates folder; each is read once per process and then
answered from memory with an ETag (a reload costs a 304).  No file system
path is ever built from the request.
"""

import functools
import hashlib
import logging
import os

from webob import Response

from hutch.errors import NotFound
from hutch.web import Route, Routes

log = logging.getLogger(__name__)

ASSETS = {
    "dashboard.css": "text/css",
    "dashboard.js": "text/javascript",
    "rateplot.js": "text/javascript",
}


@functools.lru_cache(maxsize=4)
def load_assets(templates_directory):
    """name -> (bytes, content type, etag) for every whitelisted asset found."""
    loaded = {}
    for name, content_type in ASSETS.items():
        path = os.path.join(templates_directory, "static", name)
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as error:
            log.error("dashboard asset %s is missing: %s", path, error)
            continue
        loaded[name] = (data, content_type, hashlib.sha256(data).hexdigest()[:20])
    return loaded


def asset(request, gateway, name):
    found = load_assets(gateway.settings.templates_directory).get(name)
    if found is None:
        raise NotFound(f"No asset {name!r}.")
    data, content_type, etag = found
    response = Response(body=data, content_type=content_type, charset="utf-8", conditional_response=True)
    response.etag = etag
    response.cache_control = "no-cache"  # revalidate: a deploy shows at once, a reload costs a 304
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


application = Routes(Route("{name}", GET=asset))
