"""Prometheus metrics of the server, rendered in the text exposition format.

A tiny thread-safe registry (counters, gauges, histograms with labels) and ``ServingMetrics``,
the fixed set the server exports on ``/monitoring/prometheus/metrics``: request counts and
latency per model/version/priority, batch sizes, queue depth, shed and deadline counts, model
loads and load failures, and internal errors (every logged exception is also counted).
"""

from __future__ import annotations

import bisect
import math
import threading
from typing import Dict, List, Sequence, Tuple

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(str(v))}"' for n, v in zip(names, values)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str]) -> None:
        self.name = name
        self.help = help_text
        self.labelnames = tuple(labelnames)
        self._lock = threading.Lock()

    def _key(self, labels: Sequence[str]) -> Tuple[str, ...]:
        if len(labels) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {tuple(labels)}")
        return tuple(str(v) for v in labels)

    def header(self) -> List[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]


class Counter(_Metric):
    """A monotonically increasing count per label set."""

    kind = "counter"

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labelnames)
        self._values: Dict[Tuple[str, ...], float] = {}

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        """Add ``amount`` (default 1) to the series ``labels``."""
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, *labels: str) -> float:
        """The current value of one series (0 when never incremented)."""
        with self._lock:
            return self._values.get(self._key(labels), 0.0)

    def render(self) -> List[str]:
        with self._lock:
            items = sorted(self._values.items())
        return self.header() + [f"{self.name}{_labels(self.labelnames, k)} {_number(v)}"
                                for k, v in items]


class Gauge(Counter):
    """A value that goes up and down per label set."""

    kind = "gauge"

    def set(self, value: float, *labels: str) -> None:
        """Set the series ``labels`` to ``value``."""
        key = self._key(labels)
        with self._lock:
            self._values[key] = float(value)


class Histogram(_Metric):
    """Cumulative buckets, sum and count per label set."""

    kind = "histogram"

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = (),
                 buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        super().__init__(name, help_text, labelnames)
        self.buckets = tuple(sorted(buckets))
        self._series: Dict[Tuple[str, ...], List[float]] = {}

    def observe(self, value: float, *labels: str) -> None:
        """Record one observation in the series ``labels``."""
        key = self._key(labels)
        index = bisect.bisect_left(self.buckets, value)
        with self._lock:
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = [0.0] * (len(self.buckets) + 3)
            series[index] += 1
            series[-2] += value
            series[-1] += 1

    def count(self, *labels: str) -> int:
        """How many observations the series ``labels`` holds."""
        with self._lock:
            series = self._series.get(self._key(labels))
            return int(series[-1]) if series else 0

    def render(self) -> List[str]:
        lines = self.header()
        with self._lock:
            items = sorted((k, list(v)) for k, v in self._series.items())
        for key, series in items:
            running = 0.0
            for bound, hits in zip(self.buckets + (math.inf,), series[:-2]):
                running += hits
                le = 'le="' + _number(bound) + '"'
                lines.append(f"{self.name}_bucket{_labels(self.labelnames, key, le)} {_number(running)}")
            lines.append(f"{self.name}_sum{_labels(self.labelnames, key)} {_number(series[-2])}")
            lines.append(f"{self.name}_count{_labels(self.labelnames, key)} {_number(series[-1])}")
        return lines


class ServingMetrics:
    """The metrics of one server instance (servers in one process never share series)."""

    def __init__(self) -> None:
        self.requests = Counter("serving_requests_total", "Predict requests by outcome.",
                                ("model", "version", "priority", "code"))
        self.latency = Histogram("serving_request_latency_seconds",
                                 "Predict latency from arrival to answer.",
                                 ("model", "version", "priority"))
        self.batch_size = Histogram("serving_batch_size", "Rows per executed batch.",
                                    ("model", "signature"), buckets=BATCH_BUCKETS)
        self.queue_depth = Gauge("serving_queue_depth_rows", "Rows waiting in the scheduler.",
                                 ("model",))
        self.shed = Counter("serving_shed_total",
                            "Requests refused or evicted because the queue was full.",
                            ("model", "priority"))
        self.deadline = Counter("serving_deadline_exceeded_total",
                                "Requests dropped before compute because of their deadline.",
                                ("model", "priority"))
        self.loads = Counter("serving_model_loads_total", "Model versions loaded.", ("model",))
        self.load_failures = Counter("serving_model_load_failures_total",
                                     "Model versions that failed to load.", ("model",))
        self.available = Gauge("serving_model_versions_available",
                               "Versions currently available.", ("model",))
        self.warmup = Counter("serving_warmup_requests_total", "Warmup requests replayed.",
                              ("model",))
        self.errors = Counter("serving_internal_errors_total",
                              "Exceptions caught, logged and answered as errors.", ("component",))
        self.inflight = Gauge("serving_inflight_requests", "Requests being served.")
        self.shed_level = Gauge("serving_shed_level",
                                "Lowest priority classes refused at admission (overload).")
        self._all = (self.requests, self.latency, self.batch_size, self.queue_depth, self.shed,
                     self.deadline, self.loads, self.load_failures, self.available, self.warmup,
                     self.errors, self.inflight, self.shed_level)

    def render(self) -> str:
        """All series in the Prometheus text format (version 0.0.4)."""
        lines: List[str] = []
        for metric in self._all:
            lines.extend(metric.render())
        return "\n".join(lines) + "\n"
