"""GET /static/{name}: the dashboard's own stylesheet and script, and nothing else.

Only the names in ``hutch.web.pages.ASSETS`` are ever served, from ``templates/static`` of
the configured templates folder; each is read once per process and then
answered from memory with an ETag (a reload costs a 304).  No file system
path is ever built from the request.
"""

from hutch.errors import NotFound
from hutch.web.http import Route, Routes, operation
from hutch.web.pages import asset_response, load_assets


@operation("dashboardAsset", raises=(NotFound,))
def asset(request, gateway, name):
    found = load_assets(gateway.settings.templates_directory).get(name)
    if found is None:
        raise NotFound(f"No asset {name!r}.")
    return asset_response(found)


application = Routes(Route("{name}", GET=asset))
