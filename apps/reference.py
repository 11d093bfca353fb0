"""GET /reference: the browsable API reference (Swagger UI) of ``/openapi.json``, and its files.

Open, as ``/openapi.json`` is.  The page carries the dashboard's security
headers (its Content-Security-Policy: scripts, styles and connections from
the gateway only); the files are answered from memory with an ETag, as the
dashboard's are.  No file system path is ever built from the request.
"""

from webob import Response

from hutch.contract.reference import load_assets, package_static, page
from hutch.errors import NotFound
from hutch.web.http import Route, Routes, operation
from hutch.web.pages import SECURITY_HEADERS, asset_response

package_static()  # at start-up: a gateway without swagger-ui-py stops here, naming it


@operation("reference")
def reference(request, gateway):
    base = request.script_name  # the mount point + /reference
    root = base.rsplit("/", 1)[0]
    response = Response(text=page(base, root + "/openapi.json"), content_type="text/html", charset="utf-8")
    response.headerlist.extend(SECURITY_HEADERS)
    return response


@operation("referenceAsset", raises=(NotFound,))
def asset(request, gateway, name):
    found = load_assets(gateway.settings.templates_directory).get(name)
    if found is None:
        raise NotFound(f"No file {name!r} in the API reference.")
    return asset_response(found)


application = Routes(Route("", GET=reference), Route("{name}", GET=asset))
