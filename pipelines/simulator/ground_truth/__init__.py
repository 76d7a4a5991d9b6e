"""The independent ground truth: METRICS.md's tables computed from the simulator's own records."""

from pipelines.simulator.ground_truth.builder import compute_metrics, license_key
from pipelines.simulator.ground_truth.payloads import aggregate_payload, details_events
from pipelines.simulator.ground_truth.tables import METRICS, MetricTables, MetricVars

__all__ = [
    "METRICS",
    "MetricTables",
    "MetricVars",
    "aggregate_payload",
    "compute_metrics",
    "details_events",
    "license_key",
]
