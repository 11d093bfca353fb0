"""Finding and reading the gateway's ini: the one file every Hutch process is started from.

``hutch serve``, ``hutch events``, ``hutch delivery`` and ``hutch keys`` all
find the ini the same way (``--ini``, else ``$HUTCH_INI``, else
``production.ini`` beside ``gateway.wsgi``) and read its ``[app:main]`` as
PasteDeploy resolves it, so each process sees the settings the gateway sees.
"""

import configparser
import logging.config
import os
import pathlib

from hutch.settings import parse_settings

ROOT = pathlib.Path(__file__).resolve().parent.parent  # gateway.wsgi, production.ini, apache/, apps/
PRODUCTION_INI = ROOT / "production.ini"


class IniError(Exception):
    """The ini cannot be read; the message names the file."""


def find_ini(explicit=None):
    """The ini a process serves: ``explicit``, else ``$HUTCH_INI``, else production.ini."""
    return os.path.abspath(explicit or os.environ.get("HUTCH_INI") or PRODUCTION_INI)


def read_ini(ini):
    """The ``[app:main]`` settings of ``ini`` as PasteDeploy resolves them, and its folder."""
    from paste.deploy import appconfig

    if not os.path.isfile(ini):
        raise IniError(f"no such ini file: {ini}")
    config = appconfig("config:" + ini)
    return dict(config.local_conf), config.global_conf.get("here", os.path.dirname(ini))


def load_settings(ini):
    """The typed settings of ``ini`` (``hutch.settings``)."""
    raw, here = read_ini(ini)
    return parse_settings(raw, here=here)


def configure_logging(ini):
    """Apply the ini's logging sections, when it has them."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ini, encoding="utf-8")
    if parser.has_section("loggers"):
        defaults = {"here": os.path.dirname(ini), "__file__": ini}
        logging.config.fileConfig(ini, defaults, disable_existing_loggers=False)
