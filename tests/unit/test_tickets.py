"""The dashboard's stream tickets: signed, bound to key and exchange, short-lived."""

from hutch.auth import tickets

KEY = tickets.signing_key("s" * 40)
NOW = 1_800_000_000


def test_a_ticket_names_its_key_for_its_exchange_until_it_expires():
    ticket = tickets.issue(KEY, "viewer", "scores", 60, now=NOW)
    assert tickets.verify(KEY, ticket, "scores", now=NOW) == "viewer"
    assert tickets.verify(KEY, ticket, "scores", now=NOW + 60) == "viewer"
    assert tickets.verify(KEY, ticket, "scores", now=NOW + 61) is None
    assert tickets.verify(KEY, ticket, "other", now=NOW) is None


def test_exchange_names_with_colons_are_bound_whole():
    ticket = tickets.issue(KEY, "viewer", "a:b:c", 60, now=NOW)
    assert tickets.verify(KEY, ticket, "a:b:c", now=NOW) == "viewer"
    assert tickets.verify(KEY, ticket, "a:b", now=NOW) is None


def test_forged_altered_or_foreign_tickets_are_refused():
    ticket = tickets.issue(KEY, "viewer", "scores", 60, now=NOW)
    payload, signature = ticket.split(".")
    other = tickets.issue(KEY, "admin", "scores", 60, now=NOW)
    assert tickets.verify(KEY, other.split(".")[0] + "." + signature, "scores", now=NOW) is None
    assert tickets.verify(tickets.signing_key("t" * 40), ticket, "scores", now=NOW) is None
    for broken in ("", ".", "abc", payload, payload + ".", "%%%." + signature, "é." + signature):
        assert tickets.verify(KEY, broken, "scores", now=NOW) is None
    assert tickets.signing_key("s" * 40 + "x") != KEY
