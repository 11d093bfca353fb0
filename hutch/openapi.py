"""The OpenAPI 3 description of CONTRACT.md (placeholder replaced below)."""


def document(server_url):
    return {
        "openapi": "3.0.3",
        "info": {"title": "Hutch", "version": "1"},
        "servers": [{"url": server_url or "/"}],
        "paths": {},
    }
