"""Fixtures shared by every test layer."""

import uuid

import pytest


@pytest.fixture
def unique_name():
    """A factory of broker names no other test (or teammate) uses: ``t.<prefix>.<hex>``."""

    def make(prefix="x"):
        return f"t.{prefix}.{uuid.uuid4().hex[:8]}"

    return make
