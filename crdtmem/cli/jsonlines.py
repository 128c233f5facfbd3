"""JSON lines on standard input and output, for ``crdtmem peer`` and friends."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

__all__ = ["print_json", "stdin_lines", "StdoutFlusher"]


def print_json(obj: Any, *, flush: bool = True) -> None:
    """Write ``obj`` as one JSON line on stdout.

    Args:
        flush: write it out now. With False the line waits in stdout's buffer for the next
            flush (the next ``print_json``, or a :class:`StdoutFlusher`'s): for lines printed
            many to a turn of the event loop, such as watched changes.
    """
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
    if flush:
        sys.stdout.flush()


class StdoutFlusher:
    """Flushes stdout once after each turn of the event loop that printed unflushed lines.

    Run :meth:`run` as a task; call :meth:`request` after ``print_json(..., flush=False)``.
    A burst of lines then costs one write to the pipe, not one each.
    """

    def __init__(self) -> None:
        import anyio

        self._wanted = anyio.Event()

    def request(self) -> None:
        """Flush stdout soon: once the tasks that are ready now have run."""
        self._wanted.set()

    async def run(self) -> None:
        """Flush whenever requested, until cancelled (then flush what is left)."""
        import anyio

        try:
            while True:
                await self._wanted.wait()
                self._wanted = anyio.Event()
                sys.stdout.flush()
        finally:
            sys.stdout.flush()


def stdin_lines() -> Any:
    """An anyio receive stream of stdin lines, fed by a daemon thread (so a blocked read never
    holds up shutdown); it ends at EOF. The lines of one read arrive together, so a reader can
    take the ones already waiting (``receive_nowait``) and serve them as a group."""
    import math
    import threading

    import anyio
    import anyio.from_thread
    import anyio.lowlevel

    send, receive = anyio.create_memory_object_stream(math.inf)
    token = anyio.lowlevel.current_token()

    def send_all(lines: list[bytes]) -> None:
        for line in lines:
            send.send_nowait(line)

    def reader() -> None:
        # os.read, not sys.stdin: a daemon thread blocked inside a buffered reader's lock
        # aborts the interpreter at exit.
        pending = b""
        try:
            fd = sys.stdin.fileno()
            while chunk := os.read(fd, 65536):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                if lines:  # a chunk's lines reach the loop together: one hop, not one per line
                    anyio.from_thread.run_sync(send_all, lines, token=token)
            if pending:
                anyio.from_thread.run_sync(send.send_nowait, pending, token=token)
        except Exception:  # noqa: BLE001 - the loop is gone or stdin broke: stop reading
            pass
        try:
            anyio.from_thread.run_sync(send.close, token=token)
        except Exception:  # noqa: BLE001
            pass

    threading.Thread(target=reader, name="crdtmem-stdin", daemon=True).start()
    return receive
