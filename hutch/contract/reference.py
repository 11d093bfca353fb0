"""The browsable API reference: Swagger UI over ``/openapi.json``, every file served by the gateway.

Swagger UI's stylesheet and bundle come from the installed ``swagger-ui-py``
package (its ``static`` folder; located without importing the package, which
would import its web-framework glue); ``reference.js``, which starts Swagger UI
on this gateway's document, is the templates folder's own, so the page needs no
inline script and keeps the dashboard's Content-Security-Policy.  Only the names
in ``ASSETS`` are served, each read once per process.
"""

import functools
import html
import importlib.util
import os

from hutch.web.pages import read_asset

PACKAGE = "swagger_ui"  # the distribution swagger-ui-py
# name -> (content type, where it comes from: "package" or "templates")
ASSETS = {
    "swagger-ui.css": ("text/css", "package"),
    "swagger-ui-bundle.js": ("text/javascript", "package"),
    "reference.js": ("text/javascript", "templates"),
}


def package_static():
    """The folder of Swagger UI's files in the installed package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"the package {PACKAGE!r} (swagger-ui-py) is not installed")
    return os.path.join(spec.submodule_search_locations[0], "static")


@functools.lru_cache(maxsize=4)
def load_assets(templates_directory):
    """name -> (bytes, content type, etag) for every asset found; a missing one is logged."""
    folders = {"package": package_static(), "templates": os.path.join(templates_directory, "static")}
    found = {
        name: read_asset(os.path.join(folders[source], name), content_type, "API reference asset")
        for name, (content_type, source) in ASSETS.items()
    }
    return {name: asset for name, asset in found.items() if asset is not None}


def page(assets_url, openapi_url):
    """The reference's HTML: the document's URL travels in a data attribute, read by reference.js."""
    assets = html.escape(assets_url)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        "<title>Hutch API reference</title>\n"
        '<link rel="icon" href="data:,">\n'  # no request for /favicon.ico, which the gateway lacks
        f'<link rel="stylesheet" href="{assets}/swagger-ui.css">\n'
        "</head>\n<body>\n"
        f'<div id="swagger-ui" data-openapi-url="{html.escape(openapi_url)}"></div>\n'
        f'<script src="{assets}/swagger-ui-bundle.js"></script>\n'
        f'<script src="{assets}/reference.js"></script>\n'
        "</body>\n</html>\n"
    )
