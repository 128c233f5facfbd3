"""JSON lines on standard input and output, for ``crdtmem peer`` and friends."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

__all__ = ["print_json", "stdin_lines"]


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
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
