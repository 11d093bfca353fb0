"""Read a Prometheus text exposition into ``{(name, labels): value}`` with prometheus-client's parser."""

from prometheus_client.parser import text_string_to_metric_families


def samples(text):
    """Every sample of ``text``; labels as a sorted tuple of pairs (without the multiprocess ``pid``)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "pid"))
            found[(sample.name, labels)] = found.get((sample.name, labels), 0) + sample.value
    return found


def value(found, name, **labels):
    """One sample's value, 0 when it does not exist yet."""
    return found.get((name, tuple(sorted(labels.items()))), 0)


def moved(before, after, name, **labels):
    return value(after, name, **labels) - value(before, name, **labels)
