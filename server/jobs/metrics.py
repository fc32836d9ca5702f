"""Prometheus metrics of the service (own registry, so tests can build several apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs_finished = Counter(
            "latentsync_jobs_finished", "Jobs that ended, by final status", ["status"], registry=self.registry
        )
        self.jobs_by_status = Gauge("latentsync_jobs", "Job records by status", ["status"], registry=self.registry)
        self.queue_length = Gauge("latentsync_queue_length", "Jobs waiting for the GPU", registry=self.registry)
        self.stage_seconds = Histogram(
            "latentsync_stage_seconds",
            "Time spent per pipeline stage",
            ["stage"],
            buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800),
            registry=self.registry,
        )
        self.ready = Gauge("latentsync_ready", "1 when the models are loaded", registry=self.registry)
        self.store_up = Gauge("latentsync_store_up", "1 when the job records can be read", registry=self.registry)
        self.lse_c = Histogram(
            "latentsync_output_lse_c",
            "SyncNet confidence (LSE-C) of finished jobs' outputs: a falling distribution means worse lip sync",
            buckets=(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12),
            registry=self.registry,
        )
        self.gpu_memory = Gauge(
            "latentsync_gpu_memory_bytes", "GPU memory allocated by the process", ["kind"], registry=self.registry
        )
