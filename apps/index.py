"""GET /: send a person who opens the gateway's root to the dashboard."""

from webob.exc import HTTPSeeOther

from hutch.web import Route, Routes

url_names = ("",)


def index(request, gateway):
    return HTTPSeeOther(location=request.script_name.rstrip("/") + "/dashboard/")


application = Routes(Route("", GET=index))
