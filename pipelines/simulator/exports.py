"""Async export jobs: same parameters give the same id; status advances one step per poll."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from pipelines.simulator.faults import FaultInjector

ExportKind = Literal["licenses", "transactions", "marketing_attribution"]
ExportStatus = Literal["QUEUED", "IN_PROGRESS", "COMPLETED", "FAILED"]

_NAMESPACE = uuid.UUID("6f1c6a2e-3b9d-4c52-9a57-5d1f0c2b8e11")


@dataclass
class ExportJob:
    """One initiated export; its content is fixed at initiation by `as_of` and `params`."""

    id: str
    kind: ExportKind
    generation: int
    params: dict[str, list[str]]
    as_of: date
    outcome: Literal["ok", "fail", "stuck"]
    queued_polls: int
    in_progress_polls: int
    polls: int = 0

    @property
    def status(self) -> ExportStatus:
        if self.outcome == "stuck" or self.polls <= self.queued_polls:
            return "QUEUED"
        if self.polls <= self.queued_polls + self.in_progress_polls:
            return "IN_PROGRESS"
        return "FAILED" if self.outcome == "fail" else "COMPLETED"

    def poll(self) -> ExportStatus:
        self.polls += 1
        return self.status


@dataclass
class ExportRegistry:
    """Every export of one simulator run, by id and by request identity."""

    faults: FaultInjector
    jobs: dict[str, ExportJob] = field(default_factory=dict)
    _by_request: dict[tuple[object, ...], str] = field(default_factory=dict)
    _attempts: dict[tuple[object, ...], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def initiate(
        self, kind: ExportKind, generation: int, params: dict[str, list[str]], today: date
    ) -> ExportJob:
        """Identical parameters on the same simulated day return the same export (as live);
        after a FAILED export the same request starts a fresh one with a new id."""
        identity = (
            kind,
            generation,
            tuple(sorted((k, v) for k, vs in params.items() for v in vs)),
            today.isoformat(),
        )
        with self._lock:
            existing = self.jobs.get(self._by_request.get(identity, ""))
            if existing is not None and existing.status != "FAILED":
                return existing
            attempt = self._attempts.get(identity, 0) + 1
            self._attempts[identity] = attempt
            config = self.faults.config
            job = ExportJob(
                id=str(uuid.uuid5(_NAMESPACE, f"{identity!r}#{attempt}")),
                kind=kind,
                generation=generation,
                params=params,
                as_of=today,
                outcome=self.faults.export_outcome(),
                queued_polls=config.export_queued_polls,
                in_progress_polls=config.export_in_progress_polls,
            )
            self.jobs[job.id] = job
            self._by_request[identity] = job.id
            return job

    def get(self, kind: ExportKind, export_id: str) -> ExportJob | None:
        job = self.jobs.get(export_id)
        return job if job is not None and job.kind == kind else None
