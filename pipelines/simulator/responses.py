"""JSON responses of the simulated API: whole bodies, JsonErrorsDoc errors, streamed arrays."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import orjson
from starlette.responses import Response, StreamingResponse

from pipelines.simulator.queries import ApiError

# Records per streamed chunk: big enough that the per-chunk thread hop is noise.
_CHUNK_RECORDS = 500


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def error_response(status: int, message: str, path: str | None = None) -> Response:
    return json_response(ApiError(status, message, path).body(), status)


def stream_array(records: Iterable[Mapping[str, Any]]) -> StreamingResponse:
    """A top-level JSON array sent in chunks: no Content-Length, never one body in memory."""
    return stream_chunks(array_chunks(records))


def stream_chunks(chunks: Iterable[bytes]) -> StreamingResponse:
    """Ready body chunks (array_chunks, or a cached body read back) as one JSON response."""
    return StreamingResponse(chunks, media_type="application/json")


def array_chunks(records: Iterable[Mapping[str, Any]]) -> Iterator[bytes]:
    """A top-level JSON array as byte chunks of _CHUNK_RECORDS records each."""

    def chunks() -> Iterator[bytes]:
        # The brackets ride on the first and last batch, so every chunk carries records and a
        # truncation fault always cuts through one.
        iterator = iter(records)

        def pull() -> list[Mapping[str, Any]]:
            return list(itertools.islice(iterator, _CHUNK_RECORDS))

        batch = pull()
        prefix = b"["
        while True:
            following = pull() if batch else []
            body = prefix + b",".join(orjson.dumps(r) for r in batch)
            if not following:
                yield body + b"]"
                return
            yield body
            prefix, batch = b",", following

    return chunks()
