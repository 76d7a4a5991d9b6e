"""The simulator's Date header follows its simulated clock, as the pipeline's load day does."""

from __future__ import annotations

from typing import Any

from pipelines.marketplace.client import api_day_of


def test_the_date_header_is_the_simulated_day_and_travels_with_it(simulator: Any) -> None:
    with simulator.client() as client:
        first = client.get(simulator.v2_base)
        assert first.headers.get_list("date") == [first.headers["date"]]  # exactly one
        assert api_day_of(first.headers["date"]) == simulator.today
        moved_to = simulator.advance(40)
        later = client.get(f"{simulator.v2_base}/licenses", params={"limit": 1})
        assert api_day_of(later.headers["date"]) == moved_to
        # Errors too: a retried 429 or 503 still dates the run.
        missing = client.get(f"{simulator.base_url}/rest/2/nowhere")
        assert api_day_of(missing.headers["date"]) == moved_to
