"""Which broker node to connect to next, and how long to wait first.

``amqp_url`` may name several nodes of one RabbitMQ cluster.  Each gateway
process shuffles them once (so the processes of a host, and the hosts of a
site, spread over the nodes instead of all landing on the first), connects
to one, and on failure moves to the next.  A lost connection moves on after
the back-off's first pause; a node that cannot be reached is followed by the
next one almost at once; only when a whole round of nodes has failed does
the pause double, up to ``max_delay``.  A process's connections (the pika
one and the direct publisher's) take the nodes in one order (``one_order``).
"""

import random

import pika

FIRST_DELAY = 0.5
NEXT_NODE_DELAY = 0.1  # between the nodes of one round
STABLE_AFTER = 30.0  # a connection that lived this long resets the back-off


class Nodes:
    """The cluster's nodes in this process's order, and the back-off between attempts."""

    def __init__(self, urls, configure, max_delay=10.0, shuffle=random.shuffle):
        self.parameters = [pika.URLParameters(url) for url in urls]
        for parameters in self.parameters:
            configure(parameters)
        shuffle(self.parameters)
        self.max_delay = max_delay
        self.index = 0
        self.failures = 0  # attempts since the last connection that opened
        self.delay = FIRST_DELAY

    @property
    def current(self):
        return self.parameters[self.index]

    def next_pause(self, opened, lived):
        """Move to the next node after an attempt; return the seconds to wait before trying it.

        ``opened``: the attempt connected; ``lived``: for how many seconds.
        """
        self.index = (self.index + 1) % len(self.parameters)
        if opened:
            self.failures = 0
            if lived >= STABLE_AFTER:
                self.delay = FIRST_DELAY
        else:
            self.failures += 1
            if self.failures % len(self.parameters):
                return NEXT_NODE_DELAY
        pause, self.delay = self.delay, min(self.delay * 2, self.max_delay)
        return pause

    @staticmethod
    def describe(parameters):
        """``host:port`` (never the credentials), for logs."""
        return f"{parameters.host}:{parameters.port}"


def one_order(count):
    """A shuffle for ``Nodes`` that puts every list of ``count`` nodes in one random order, drawn
    now: a process's connections try the nodes in the same order, the processes in different ones."""
    order = random.sample(range(count), count)

    def shuffle(parameters):
        parameters[:] = [parameters[index] for index in order]

    return shuffle
