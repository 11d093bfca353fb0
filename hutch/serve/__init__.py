"""Running Hutch: the ``hutch`` command, its process supervision and the front proxy.

``cli`` parses ``hutch serve``/``events``/``delivery``/``keys`` and starts
everything; ``plan`` turns the ini and the flags into mod_wsgi-express's
command line (the settings of ``apache/hutch.conf``, limits from the ini) and
the event servers' and delivery processes', checked before anything starts;
``supervisor`` runs them as one service (signals, restarts, Apache's output,
shutdown); ``front`` writes and runs HAProxy on the public port; ``keys_cli``
manages API keys; ``metrics_dir`` the folder the processes share their
metrics in.

The top of the package: it may import any tier; nothing imports it.
"""
