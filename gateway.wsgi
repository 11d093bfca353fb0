"""What mod_wsgi loads: the gateway built from a PasteDeploy ini.

With no environment set it serves ``production.ini`` beside this file
(amqp://guest:guest@localhost); ``HUTCH_INI`` names another ini (under
Apache, export it in /etc/apache2/envvars: SetEnv never reaches os.environ).
The ini's logging sections, when it has them, configure logging first, so
that the gateway's start-up is logged to Apache's error log.
"""

import configparser
import logging.config
import os

from paste.deploy import loadapp

HERE = os.path.dirname(os.path.abspath(__file__))
INI = os.path.abspath(os.environ.get("HUTCH_INI") or os.path.join(HERE, "production.ini"))


def has_logging_sections(path):
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(path, encoding="utf-8")
    return parser.has_section("loggers")


if has_logging_sections(INI):
    logging.config.fileConfig(
        INI, {"here": os.path.dirname(INI), "__file__": INI}, disable_existing_loggers=False
    )
application = loadapp("config:" + INI)
