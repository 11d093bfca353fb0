"""metrics.publish_confirmed_many: a batch's confirms count in the metrics as one call each would."""

from prometheus_client import CollectorRegistry, Counter, Histogram

from hutch import metrics


def samples(registry):
    """Every sample but the creation times."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for m in registry.collect()
        for s in m.samples
        if not s.name.endswith("_created")
    }


def test_a_batch_counts_as_its_messages_one_by_one(monkeypatch):
    figures = []
    for many in (False, True):
        registry = CollectorRegistry()
        histogram = Histogram(
            "confirm_seconds", "h", ["idiom"], buckets=metrics.LATENCY_BUCKETS, registry=registry
        )
        counter = Counter("unroutable", "c", ["idiom"], registry=registry)
        monkeypatch.setattr(metrics, "PUBLISH_CONFIRM_SECONDS", histogram)
        monkeypatch.setattr(metrics, "UNROUTABLE", counter)
        monkeypatch.setattr(metrics, "_publish_children", {})
        for seconds, count, unrouted in ((0.004, 7, 2), (0.3, 3, 0), (0.004, 1, 1)):
            if many:
                metrics.publish_confirmed_many("notify", seconds, count, unrouted)
            else:
                for index in range(count):
                    metrics.publish_confirmed("notify", seconds, index >= unrouted)
        metrics.publish_confirmed_many("notify", 1.0, 0, 0)  # nothing confirmed: nothing counted
        figures.append(samples(registry))
    one_by_one, at_once = figures
    assert at_once == one_by_one
    assert one_by_one[("confirm_seconds_count", (("idiom", "notify"),))] == 11
