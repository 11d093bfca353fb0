"""``metrics``: an idiom without a resource in permission strings."""

import pytest

from hutch.auth.policy import parse_permission


@pytest.mark.parametrize("text", ["metrics", "metrics:*"])
def test_metrics_alone_or_with_star(text):
    permission = parse_permission(text)
    assert permission.allows("metrics", "")
    assert not permission.allows("broadcast", "x")


@pytest.mark.parametrize("text", ["metrics:x", "metrics:a/b", "metrics:"])
def test_metrics_has_no_resource(text):
    with pytest.raises(ValueError, match="no resource"):
        parse_permission(text)


def test_star_allows_metrics_and_idiom_permissions_do_not():
    assert parse_permission("*").allows("metrics", "")
    assert not parse_permission("broadcast:*").allows("metrics", "")
    assert not parse_permission("watch:*").allows("metrics", "")
