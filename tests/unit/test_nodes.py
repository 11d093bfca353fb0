"""The order in which a process tries the nodes of a cluster, and the pauses between attempts."""

import pytest

from hutch.amqp.nodes import FIRST_DELAY, NEXT_NODE_DELAY, STABLE_AFTER, Nodes

URLS = [f"amqp://u:p@node{number}:{5670 + number}/%2F" for number in (1, 2, 3)]


def in_order(items):
    """A shuffle that keeps the ini's order, so the test can follow the rotation."""


def hosts(nodes):
    return [parameters.host for parameters in nodes.parameters]


def test_every_node_is_configured_once():
    seen = []
    nodes = Nodes(URLS, seen.append, shuffle=in_order)
    assert seen == nodes.parameters
    assert hosts(nodes) == ["node1", "node2", "node3"]
    assert nodes.describe(nodes.current) == "node1:5671"  # never the credentials


def test_processes_spread_over_the_nodes():
    first_choices = {Nodes(URLS, lambda _parameters: None).current.host for _ in range(200)}
    assert first_choices == {"node1", "node2", "node3"}


def test_a_lost_connection_moves_to_the_next_node_after_the_first_pause():
    nodes = Nodes(URLS, lambda _parameters: None, shuffle=in_order)
    assert nodes.next_pause(opened=True, lived=1.0) == FIRST_DELAY
    assert nodes.current.host == "node2"


def test_unreachable_nodes_are_skipped_quickly_and_each_failed_round_doubles_the_pause():
    nodes = Nodes(URLS, lambda _parameters: None, max_delay=3.0, shuffle=in_order)
    pauses = [nodes.next_pause(opened=False, lived=0.1) for _ in range(9)]
    assert pauses == [NEXT_NODE_DELAY, NEXT_NODE_DELAY, 0.5] + [NEXT_NODE_DELAY] * 2 + [1.0] + [
        NEXT_NODE_DELAY
    ] * 2 + [2.0]
    assert [nodes.next_pause(opened=False, lived=0.1) for _ in range(3)][-1] == 3.0  # capped
    assert nodes.current.host == "node1"


def test_a_connection_that_lived_resets_the_back_off():
    nodes = Nodes(URLS, lambda _parameters: None, shuffle=in_order)
    for _ in range(6):
        nodes.next_pause(opened=False, lived=0.1)
    assert nodes.next_pause(opened=True, lived=STABLE_AFTER) == FIRST_DELAY


def test_connections_that_keep_dropping_back_off():
    nodes = Nodes(URLS, lambda _parameters: None, shuffle=in_order)
    assert [nodes.next_pause(opened=True, lived=0.2) for _ in range(3)] == [0.5, 1.0, 2.0]


@pytest.mark.parametrize("count", [1, 3])
def test_one_node_backs_off_as_before(count):
    nodes = Nodes(URLS[:1] * count, lambda _parameters: None, shuffle=in_order)
    pauses = [nodes.next_pause(opened=False, lived=0.0) for _ in range(count * 2)]
    assert pauses[count - 1] == FIRST_DELAY
    assert pauses[-1] == FIRST_DELAY * 2
