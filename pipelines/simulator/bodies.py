"""Export bodies rendered once: the first download streams while it is written to a scratch
file, every later download of the same body streams that file.

An export's content is fixed by its request and the simulated day (an async export by its job,
which records both), so a body rendered once can be served again as it is, as the live API
serves a prepared export file. Rendering is what serving cost (~30k records per CPU second
for a large vendor); reading the file back costs next to nothing. A backfill that downloads the
same exports again (a resumed run, `make bench` after its ceiling) no longer waits on the
simulator.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

# Bytes per chunk read back from a file: about the size of a rendered chunk (500 records).
_READ_CHUNK = 1 << 19
# Scratch disk the cache may hold; the least recently served bodies go first. A large vendor's
# backfill exports are ~3.5 GB.
DEFAULT_LIMIT_BYTES = 8 << 30


class BodyCache:
    """Rendered bodies by key, as files in a private scratch folder (removed with the cache)."""

    def __init__(self, limit_bytes: int = DEFAULT_LIMIT_BYTES) -> None:
        self.limit_bytes = limit_bytes
        self.folder = Path(tempfile.mkdtemp(prefix="mpac-sim-bodies-"))
        self._files: OrderedDict[Hashable, tuple[Path, int]] = OrderedDict()
        self._lock = threading.Lock()
        self._serial = 0
        # The folder goes when the cache does, or at interpreter exit (uvicorn's SIGTERM too).
        self._finalizer = weakref.finalize(self, shutil.rmtree, self.folder, True)

    def close(self) -> None:
        self._finalizer()

    def __len__(self) -> int:
        return len(self._files)

    def serve(self, key: Hashable, render: Callable[[], Iterable[bytes]]) -> Iterator[bytes]:
        """The body's chunks: from its file when rendered before, else rendered now and kept.

        Only a body rendered to its end is kept: a download cut short (a fault, a client that
        went away) leaves nothing behind, and the next download renders again.
        """
        with self._lock:
            known = self._files.get(key)
            if known is not None:
                self._files.move_to_end(key)
                handle = _open(known[0])
            else:
                handle = None
                self._serial += 1
                partial = self.folder / f"{self._serial}.partial"
        if handle is not None:
            return _read(handle)
        return self._tee(key, render, partial)

    def _tee(
        self, key: Hashable, render: Callable[[], Iterable[bytes]], partial: Path
    ) -> Iterator[bytes]:
        size = 0
        complete = False
        try:
            with partial.open("wb") as out:
                for chunk in render():
                    out.write(chunk)
                    size += len(chunk)
                    yield chunk
            complete = True
        finally:
            if complete:
                self._keep(key, partial, size)
            else:
                partial.unlink(missing_ok=True)

    def _keep(self, key: Hashable, partial: Path, size: int) -> None:
        final = partial.with_suffix(".json")
        os.replace(partial, final)
        with self._lock:
            previous = self._files.pop(key, None)
            self._files[key] = (final, size)
            evicted = [previous[0]] if previous else []
            total = sum(s for _, s in self._files.values())
            while total > self.limit_bytes and len(self._files) > 1:
                _, (path, dropped) = self._files.popitem(last=False)
                evicted.append(path)
                total -= dropped
        for path in evicted:
            # A download still reading an evicted file keeps its open handle (POSIX).
            path.unlink(missing_ok=True)


def _open(path: Path) -> BinaryIO:
    # Opened under the lock, so an eviction racing this download cannot remove it first.
    return path.open("rb")


def _read(handle: BinaryIO) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(_READ_CHUNK):
            yield chunk
