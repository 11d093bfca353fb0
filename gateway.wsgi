"""What mod_wsgi loads: the gateway built from a PasteDeploy ini.

With no environment set it serves ``production.ini`` beside this file
(amqp://guest:guest@localhost); ``HUTCH_INI`` names another ini.
"""

import logging.config
import os

from paste.deploy import loadapp

HERE = os.path.dirname(os.path.abspath(__file__))
INI = os.path.abspath(os.environ.get("HUTCH_INI") or os.path.join(HERE, "production.ini"))

logging.config.fileConfig(
    INI, {"here": os.path.dirname(INI), "__file__": INI}, disable_existing_loggers=False
)
application = loadapp("config:" + INI)
