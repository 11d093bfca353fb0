"""Paste's urlparser over ``apps/``, hardened.

Paste's ``URLParser`` serves any non-.py file in its folder as raw bytes,
serves ``notify.py~`` source, writes ``__init__.py`` into the folder during a
request, answers 500 for ``/__init__``, and (with a dotted base name)
re-imports every module on every request.  ``AppDirectory`` keeps Paste's
dispatch (first path segment -> module, SCRIPT_NAME/PATH_INFO shifted) but
loads each ``apps/*.py`` module once, at start-up, under the namespaced name
``hutch_apps.<name>``, and dispatches only to those modules' ``application``.
"""

import importlib.util
import os
import sys

from paste.urlparser import URLParser

from hutch.errors import NotFound
from hutch.web.http import error_response

NAMESPACE = "hutch_apps"


def load_app_modules(directory):
    """Import every public ``*.py`` in ``directory``; map URL segment -> WSGI app."""
    apps = {}
    for filename in sorted(os.listdir(directory)):
        name, extension = os.path.splitext(filename)
        if extension != ".py" or not name.isidentifier() or name.startswith("_"):
            continue
        module_name = f"{NAMESPACE}.{name}"
        path = os.path.join(directory, filename)
        module = sys.modules.get(module_name)
        if module is None or getattr(module, "__file__", None) != path:  # not another folder's module
            spec = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
        application = getattr(module, "application", None)
        if application is None:
            raise ImportError(f"{filename} in {directory} defines no 'application'")
        for segment in getattr(module, "url_names", (name,)):
            apps[segment] = application
    return apps


def route_table(apps):
    """``(path, method, route, view)`` for every view of the loaded app modules (``load_app_modules``)."""
    for mount, application in apps.items():
        for route in getattr(application, "routes", ()):
            for method, view in route.views.items():
                yield route.path(mount), method, route, view


class AppDirectory(URLParser):
    """A ``URLParser`` that dispatches only to modules loaded at start-up."""

    def __init__(self, directory):
        super().__init__({}, directory, NAMESPACE, index_names=(), constructors={})
        self.apps = load_app_modules(directory)
        self.init_module = None  # no __init__.py hooks, and never look for one

    def __call__(self, environ, start_response):
        environ.setdefault("SCRIPT_NAME", "")  # PEP 3333 lets a server omit it when empty
        return super().__call__(environ, start_response)

    def find_application(self, environ):
        path_info = environ.get("PATH_INFO", "")
        segment, _, rest = path_info.lstrip("/").partition("/")
        application = self.apps.get(segment)
        if application is None:
            return None, None
        if not segment:  # the mount point itself: nothing to shift
            return application, segment
        environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + "/" + segment
        environ["PATH_INFO"] = "/" + rest if rest or path_info.endswith("/") else ""
        return application, segment

    def find_file(self, environ, base_filename):  # pragma: no cover - never scans
        return None

    def not_found(self, environ, start_response, debug_message=None):
        return error_response(NotFound())(environ, start_response)

    def add_slash(self, environ, start_response):
        """The mount point without its slash (``/gateway``) is the index, as ``/gateway/`` is."""
        index = self.apps.get("")
        if index is None:
            return self.not_found(environ, start_response)
        return index(environ, start_response)
