"""``metrics.labelled``: the remembered child is the one ``labels()`` returns, created on first use."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from reward_service import metrics


def test_labelled_returns_the_child_labels_returns_and_adds_no_series_before_use() -> None:
    registry = CollectorRegistry()
    counter = Counter("unirg_test_labelled_total", "test", ["route"], registry=registry)
    assert registry.get_sample_value("unirg_test_labelled_total", {"route": "/a"}) is None

    metrics.labelled(counter, "/a").inc()
    metrics.labelled(counter, "/a").inc(2)

    assert metrics.labelled(counter, "/a") is counter.labels("/a") is counter.labels(route="/a")
    assert registry.get_sample_value("unirg_test_labelled_total", {"route": "/a"}) == 3
    assert registry.get_sample_value("unirg_test_labelled_total", {"route": "/b"}) is None
