"""Seeded fault injection: rate limits, 5xx, latency, dropped and truncated responses, exports."""

from __future__ import annotations

import dataclasses
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from pipelines.errors import UserError

FaultKind = Literal["none", "429", "5xx", "drop", "truncate"]


@dataclass(frozen=True)
class FaultConfig:
    """What goes wrong and how often; every rate is a probability per /rest request.

    The same seed and the same request sequence always give the same faults.
    """

    seed: int = 0
    rate_429: float = 0.0
    # The live API sometimes sends Retry-After with its 429s; seconds, kept small for tests.
    retry_after_seconds: int = 1
    rate_5xx: float = 0.0
    latency_ms: int = 0
    rate_drop: float = 0.0
    rate_truncate: float = 0.0
    # Async exports: the first N initiated exports FAIL, then each fails with export_fail_rate.
    export_fail_first_n: int = 0
    export_fail_rate: float = 0.0
    # Every export stays QUEUED forever: the client's poll deadline must fire.
    export_stuck: bool = False
    # Status polls an export spends QUEUED, then IN_PROGRESS, before COMPLETED (or FAILED).
    export_queued_polls: int = 1
    export_in_progress_polls: int = 1

    def __post_init__(self) -> None:
        for name in ("rate_429", "rate_5xx", "rate_drop", "rate_truncate", "export_fail_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise UserError(f"Fault {name} must be between 0 and 1, got {value}.")
        if self.rate_429 + self.rate_5xx + self.rate_drop + self.rate_truncate > 1.0:
            raise UserError("The fault rates (429, 5xx, drop, truncate) add up to more than 1.")
        for name in (
            "retry_after_seconds",
            "latency_ms",
            "export_fail_first_n",
            "export_queued_polls",
            "export_in_progress_polls",
        ):
            if getattr(self, name) < 0:
                raise UserError(f"Fault {name} must not be negative.")


PROFILES: dict[str, FaultConfig] = {
    "none": FaultConfig(),
    "flaky": FaultConfig(
        rate_429=0.05,
        rate_5xx=0.05,
        rate_drop=0.02,
        rate_truncate=0.02,
        retry_after_seconds=1,
        latency_ms=5,
        export_fail_first_n=1,
    ),
}


def parse_faults(spec: FaultConfig | str | dict[str, Any] | None, **overrides: Any) -> FaultConfig:
    """Read a fault spec: a FaultConfig, a profile name, a JSON object or a dict.

    A JSON object or dict may name a base `"profile"` and override any field of it.
    """
    if isinstance(spec, FaultConfig):
        config = spec
    elif spec is None or (isinstance(spec, str) and spec.strip() in ("", "none")):
        config = PROFILES["none"]
    elif isinstance(spec, str) and not spec.strip().startswith("{"):
        if spec.strip() not in PROFILES:
            names = ", ".join(PROFILES)
            raise UserError(f"Unknown fault profile {spec!r}: use {names} or a JSON object.")
        config = PROFILES[spec.strip()]
    else:
        if isinstance(spec, str):
            try:
                spec = orjson.loads(spec)
            except orjson.JSONDecodeError as error:
                raise UserError(f"The faults JSON does not parse: {error}.") from None
        if not isinstance(spec, dict):
            raise UserError('The faults JSON must be an object such as {"rate_429": 0.1}.')
        spec = dict(spec)
        base = parse_faults(spec.pop("profile", None))
        config = _replace(base, spec)
    return _replace(config, overrides) if overrides else config


def _replace(config: FaultConfig, changes: dict[str, Any]) -> FaultConfig:
    known = {f.name: f.type for f in dataclasses.fields(FaultConfig)}
    unknown = sorted(set(changes) - set(known))
    if unknown:
        raise UserError(f"Unknown fault setting(s) {', '.join(unknown)}: use {', '.join(known)}.")
    try:
        typed = {
            name: bool(value) if name == "export_stuck" else type(getattr(config, name))(value)
            for name, value in changes.items()
        }
    except (TypeError, ValueError):
        raise UserError("A fault setting has a value of the wrong type.") from None
    return dataclasses.replace(config, **typed)


@dataclass
class FaultInjector:
    """Draws the fault for each request from one seeded stream, and counts what it did."""

    config: FaultConfig = field(default_factory=FaultConfig)
    counters: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(self.config.seed)
        self._exports_started = 0

    def reconfigure(self, config: FaultConfig) -> None:
        """Swap the config and restart the random stream from its seed."""
        with self._lock:
            self.config = config
            self._rng = random.Random(config.seed)
            self._exports_started = 0

    def draw(self) -> FaultKind:
        """The fault for the next /rest request (one draw per request keeps runs reproducible)."""
        with self._lock:
            config = self.config
            roll = self._rng.random()
            for kind, rate in (
                ("429", config.rate_429),
                ("5xx", config.rate_5xx),
                ("drop", config.rate_drop),
                ("truncate", config.rate_truncate),
            ):
                if roll < rate:
                    self.counters[f"fault_{kind}"] += 1
                    return kind  # type: ignore[return-value]
                roll -= rate
            return "none"

    def server_error_status(self) -> int:
        """Which 5xx to send: the live API has been seen to answer 500, 502 and 503."""
        with self._lock:
            return self._rng.choice((500, 502, 503))

    def truncate_at_chunk(self) -> int:
        """After how many whole body chunks a truncated response stops mid-chunk."""
        with self._lock:
            return self._rng.randint(0, 2)

    def export_outcome(self) -> Literal["ok", "fail", "stuck"]:
        """Decided once, when an export is initiated, so its fate does not depend on polling."""
        with self._lock:
            config = self.config
            self._exports_started += 1
            fails = self._exports_started <= config.export_fail_first_n
            fails = fails or self._rng.random() < config.export_fail_rate
            outcome = "stuck" if config.export_stuck else "fail" if fails else "ok"
            if outcome != "ok":
                self.counters[f"export_{outcome}"] += 1
            return outcome  # type: ignore[return-value]

    def count(self, key: str) -> None:
        with self._lock:
            self.counters[key] += 1
