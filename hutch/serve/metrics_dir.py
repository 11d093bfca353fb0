"""The folder where every process of one ``hutch serve`` keeps its Prometheus values.

prometheus-client's multiprocess mode needs ``PROMETHEUS_MULTIPROC_DIR`` set
in each process before it imports prometheus_client, naming a folder that
holds only this server's files.  ``hutch serve`` empties it and sets the
variable before Apache starts, so the mod_wsgi daemons and the event server
inherit it and counters start from zero with each start of the server.  It
lives in the server root (mod_wsgi-express's folder for this host and
port), so two servers never share it.  Imports nothing of prometheus_client:
the serving processes must be the first to do that.
"""

import os
import pathlib
import pwd
import shutil
import tempfile

from hutch.metrics_env import MULTIPROCESS_ENV

FOLDER = "metrics"


def default_server_root(host, port):
    """Where mod_wsgi-express puts its server root when not told (its own rule)."""
    return f"{tempfile.gettempdir()}/mod_wsgi-{host}:{port}:{os.getuid()}"


def prepare_metrics_directory(server_root, user=None):
    """Empty ``server_root/metrics`` (created if missing), hand it to ``user``; export it."""
    server_root = pathlib.Path(server_root)
    server_root.mkdir(mode=0o755, parents=True, exist_ok=True)
    directory = server_root / FOLDER
    if directory.is_symlink():
        raise OSError(f"{directory} is a symbolic link; refusing to empty it")
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(mode=0o700)
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(directory, entry.pw_uid, entry.pw_gid)
    os.environ[MULTIPROCESS_ENV] = str(directory)
    return directory
