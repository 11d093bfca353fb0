"""Names of exchanges, routing keys and consumers (the contract's Names)."""

import pytest

from hutch.errors import InvalidName, ReservedName
from hutch.names import checked_name


@pytest.mark.parametrize(
    "name",
    ["a", "scores", "Scores_2024", "app.events:v1", "a-b_c.d:e", "9", "x" * 127, "amq", "amqX.y", "AMQ.x"],
)
def test_legal_names_pass_through(name):
    assert checked_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        None,
        "x" * 128,
        "with space",
        "slash/inside",
        "star*",
        "hash#",
        "percent%20",
        "new\nline",
        "tab\t",
        "trailing\n",
        "caf\u00e9",
        "\u0661\u0662",  # Arabic-Indic digits: str.isdigit() is true, still not 0-9
        "\uff41",  # fullwidth 'a'
    ],
)
def test_illegal_names_are_400(name):
    with pytest.raises(InvalidName) as caught:
        checked_name(name, "exchange")
    assert caught.value.status == 400
    assert "exchange" in caught.value.detail


@pytest.mark.parametrize("name", ["amq.direct", "amq.", "amq.rabbitmq.reply-to"])
def test_amq_names_are_reserved_403(name):
    with pytest.raises(ReservedName) as caught:
        checked_name(name, "routing key")
    assert caught.value.status == 403
    assert "routing key" in caught.value.detail


def test_overlong_reserved_name_is_a_bad_name_first():
    with pytest.raises(InvalidName):
        checked_name("amq." + "x" * 124)
