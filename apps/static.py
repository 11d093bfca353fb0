"""GET /static/{name}: the dashboard's own stylesheet and script, and nothing else.

Only the names in ``hutch.web.pages.ASSETS`` are ever served, from ``templates/static`` of
the configured templates folder; each is read once per process and then
answered from memory with an ETag (a reload costs a 304).  No file system
path is ever built from the request.
"""

from webob import Response

from hutch.errors import NotFound
from hutch.web.http import Route, Routes, operation
from hutch.web.pages import load_assets


@operation("dashboardAsset", raises=(NotFound,))
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
