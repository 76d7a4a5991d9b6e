"""Export bodies rendered once: the cache itself, and downloads served from it over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from pipelines.simulator.bodies import BodyCache
from tests.simulator.test_faults import read_raw


def _render(chunks: list[bytes], calls: list[int]) -> Iterator[bytes]:
    calls.append(1)
    yield from chunks


def test_a_body_is_rendered_once_and_read_back_whole():
    cache = BodyCache()
    calls: list[int] = []
    chunks = [b"[" + b"1," * 200_000, b"2]"]
    try:
        first = b"".join(cache.serve("k", lambda: _render(chunks, calls)))
        again = b"".join(cache.serve("k", lambda: _render(chunks, calls)))
        other = b"".join(cache.serve("other", lambda: _render([b"[]"], calls)))
    finally:
        cache.close()
    assert first == again == b"".join(chunks)
    assert other == b"[]"
    assert len(calls) == 2
    assert not cache.folder.exists()


def test_a_body_cut_short_is_not_kept():
    cache = BodyCache()
    calls: list[int] = []
    try:
        stream = cache.serve("k", lambda: _render([b"[1,", b"2]"], calls))
        assert next(stream) == b"[1,"
        stream.close()  # the client went away after the first chunk
        assert len(cache) == 0
        assert list(cache.folder.iterdir()) == []
        assert b"".join(cache.serve("k", lambda: _render([b"[1,", b"2]"], calls))) == b"[1,2]"
    finally:
        cache.close()
    assert len(calls) == 2


def test_the_least_recently_served_body_goes_first_past_the_limit():
    cache = BodyCache(limit_bytes=10)
    calls: list[int] = []
    try:
        for key in ("a", "b", "c"):
            b"".join(cache.serve(key, lambda: _render([b"[1,2,3]"], calls)))
        assert len(cache) == 1  # 7 bytes each, 10 allowed: only the newest stays
        b"".join(cache.serve("c", lambda: _render([b"[1,2,3]"], calls)))
        b"".join(cache.serve("a", lambda: _render([b"[1,2,3]"], calls)))
    finally:
        cache.close()
    assert len(calls) == 4  # a, b, c, then a again; c came from its file


@pytest.mark.integration
@pytest.mark.parametrize("simulator", [{"size": "small"}], indirect=True)
def test_downloads_again_are_the_same_bytes_and_follow_the_simulated_day(simulator):
    with simulator.client() as client:
        started = client.post(f"{simulator.v2_base}/sales/transactions/async/export").json()
        for _ in range(3):
            client.get(f"{simulator.base_url}{started['_links']['status']['href']}")
        href = f"{simulator.base_url}{started['_links']['download']['href']}"
        first, again = client.get(href).content, client.get(href).content
        sync = f"{simulator.v2_base}/sales/transactions/export"
        before, before_again = client.get(sync).content, client.get(sync).content
        assert len(simulator.state.bodies) == 2
        simulator.advance(60)
        after = client.get(sync).content
        later = client.get(href).content
    assert first == again == before == before_again == later
    # A new simulated day is a new body: the sync export shows the new sales.
    assert len(httpx.Response(200, content=after).json()) > len(
        httpx.Response(200, content=before).json()
    )


@pytest.mark.integration
def test_a_body_read_back_is_still_cut_by_a_truncation_fault(simulator):
    url = f"{simulator.v2_base}/licenses/export"
    with simulator.client() as client:
        whole = client.get(url).content
    simulator.set_faults(rate_truncate=1.0, seed=5)
    status, received, error = read_raw(url, simulator.auth)
    assert status == 200
    assert isinstance(error, (httpx.RemoteProtocolError, httpx.ReadError))
    assert len(simulator.state.bodies) == 1
    assert whole.startswith(received)
    assert len(received) < len(whole)
