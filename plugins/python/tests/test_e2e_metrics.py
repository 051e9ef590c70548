"""The host's Prometheus endpoint (``[server] metrics_path``, issue 11), scraped after a known
mix of requests to the Python plugin's decorator routes and parsed with
``prometheus_client``'s text-format parser: the counters equal the requests sent."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import missing_binaries, start_app_host

pytestmark = pytest.mark.e2e


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample by (name, sorted labels); the parser raises on malformed text."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in samples, f"duplicate series {key}"
            samples[key] = s.value
    return samples


def series(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return (name, tuple(sorted(labels.items())))


def test_counters_equal_the_requests_sent(tmp_path: Path) -> None:
    if missing_binaries():
        pytest.skip("needs the built host and plugin")
    host = start_app_host(tmp_path, "examples.app:app", server={"metrics_path": "/metrics", "body_limit": "1KiB"})
    try:
        for _ in range(3):
            assert host.get("/hello").status == 200
        for path in ("/nowhere", "/hello/deeper"):
            assert host.get(path).status == 404
        assert host.get("/items/zero", headers={"x-token": "t"}).status == 422
        assert host.get("/items/0", headers={"x-token": "t"}).status == 404  # the handler's own 404
        assert host.get("/items/7", headers={"x-token": "t"}).status == 200
        assert host.post("/items", {}).status == 422
        assert host.post("/items", {"name": "x" * 4096, "price": 1}).status == 413
        assert host.post("/items", {"name": "pen", "price": 1.5}).status == 201

        scrape = host.get("/metrics")
        assert scrape.status == 200
        assert scrape.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        samples = parse(scrape.text)
    finally:
        host.stop()

    def total(method: str, route: str, status_class: str) -> float:
        key = series("spikard_requests_total", method=method, route=route, status_class=status_class)
        return samples.get(key, 0.0)

    assert total("GET", "/hello", "2xx") == 3
    assert total("GET", "unmatched", "4xx") == 2
    assert total("GET", "/items/{item_id}", "4xx") == 2
    assert total("GET", "/items/{item_id}", "2xx") == 1
    assert total("POST", "/items", "4xx") == 2
    assert total("POST", "/items", "2xx") == 1
    # Only route templates and "unmatched": never a raw path.
    routes = {dict(labels).get("route") for (_, labels) in samples if dict(labels).get("route")}
    assert routes == {"/hello", "/items", "/items/{item_id}", "unmatched"}, routes

    duration = "spikard_request_duration_seconds"
    assert samples[series(f"{duration}_count", method="GET", route="/hello")] == 3
    assert samples[series(f"{duration}_bucket", method="GET", route="/hello", le="+Inf")] == 3
    assert samples[series(f"{duration}_count", method="POST", route="/items")] == 3
    assert samples[series(f"{duration}_sum", method="GET", route="/hello")] > 0

    assert samples[series("spikard_rejected_total", reason="validation")] == 2
    assert samples[series("spikard_rejected_total", reason="body_too_large")] == 1
    assert samples[series("spikard_rejected_total", reason="timeout")] == 0
    assert samples[series("spikard_plugin_errors_total", kind="failure")] == 0
    assert samples[series("spikard_requests_in_flight")] == 0
