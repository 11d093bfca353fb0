"""Running Hutch: the ``hutch`` command, its process supervision and the front proxy.

``cli`` parses ``hutch serve``/``events``/``delivery``/``keys`` and starts
mod_wsgi-express with the settings of ``apache/hutch.conf``, the event
servers and the delivery processes; ``front`` writes and runs HAProxy on the
public port; ``keys_cli`` manages API keys; ``metrics_dir`` the folder the
processes share their metrics in.

The top of the package: it may import any tier; nothing imports it.
"""
