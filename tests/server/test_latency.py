"""The request-latency histogram exposes exactly what prometheus_client's Histogram does."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from flagstaff.server.latency import LatencyHistogram

OBSERVED = [0.0, 0.0001, 0.005, 0.0050001, 0.01, 0.3, 0.75, 1.0, 2.0, 9.99, 10.0, 10.5, 120.0]
SERIES = [("POST", "/ofrep/v1/evaluate/flags", "200"), ("GET", "/flags/{key}", "404")]


def _without_created(text: bytes) -> str:
    return re.sub(r"^(\w+_created\{.*\}) \S+$", r"\1 T", text.decode(), flags=re.MULTILINE)


def test_exposition_matches_prometheus_clients_histogram() -> None:
    ours_registry, theirs_registry = CollectorRegistry(), CollectorRegistry()
    ours = LatencyHistogram("flagstaff_http_request_duration_seconds", "HTTP request latency.",
                            registry=ours_registry)
    theirs = Histogram("flagstaff_http_request_duration_seconds", "HTTP request latency.",
                       ["method", "route", "status"], registry=theirs_registry)
    for n, (method, route, status) in enumerate(SERIES):
        for seconds in OBSERVED[n:]:
            ours.labels(method=method, route=route, status=status).observe(seconds)
            theirs.labels(method=method, route=route, status=status).observe(seconds)
    expected = _without_created(generate_latest(theirs_registry))
    assert _without_created(generate_latest(ours_registry)) == expected
    assert 'le="+Inf",method="POST",route="/ofrep/v1/evaluate/flags",status="200"} 13.0' in expected


def test_a_series_is_created_once_per_label_set() -> None:
    histogram = LatencyHistogram("x_seconds", "x", registry=CollectorRegistry())
    first = histogram.labels(method="POST", route="/evaluate", status="200")
    assert histogram.labels(method="POST", route="/evaluate", status="200") is first
    assert histogram.labels(method="POST", route="/evaluate", status="400") is not first
