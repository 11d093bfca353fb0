"""The environment variable prometheus-client's multiprocess mode reads (kept apart: importing
``hutch.metrics`` would import prometheus_client before the variable is set)."""

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
