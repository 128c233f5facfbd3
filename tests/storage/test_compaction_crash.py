"""A SqliteStore SIGKILLed in the middle of a compaction: every durable batch survives, unchanged.

A child process (``compacting_writer.py``) journals signed batches to a real SQLite file and
compacts every few batches, the memory growing by ~10 KB a batch. The test kills it with
SIGKILL as soon as it announces a compaction (seeded: the 2nd to 5th of each run), restarts it
on the same file, and kills it again, four times. After every kill the store opens; it holds
every batch the writer reported durable; the journal it held after the previous kill is an
unchanged prefix of the new one (old rows are never rewritten); and the restored memory has
each batch applied exactly once.
"""

from __future__ import annotations

import os
import queue
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

from crdtmem.protocol.batch import peek_batch
from crdtmem.storage import SqliteStore

from .compacting_writer import WRITER

SCRIPT = Path(__file__).with_name("compacting_writer.py")


class Writer:
    """The child process, its stdout read by a thread into a queue (every read is bounded)."""

    def __init__(self, path: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, str(SCRIPT), str(path)], stdout=subprocess.PIPE,
                                     text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def next_line(self) -> str:
        line = self.lines.get(timeout=60)
        assert line is not None, f"the writer exited ({self.proc.wait(10)}) after {self.seen[-3:]}"
        self.seen.append(line)
        return line

    def kill_at_compaction(self, number: int) -> int:
        """SIGKILL the writer as soon as it announces its ``number``-th compaction; return that batch's seq."""
        count = 0
        while True:
            kind, seq = self.next_line().split()
            if kind == "compacting":
                count += 1
                if count == number:
                    os.kill(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(timeout=30)
                    while (line := self.lines.get(timeout=30)) is not None:  # what it printed before dying
                        self.seen.append(line)
                    return int(seq)

    def durable(self) -> list[int]:
        return [int(line.split()[1]) for line in self.seen if line.startswith("durable ")]


def test_a_store_killed_during_compactions_keeps_every_durable_batch_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "writer.db"
    rng = random.Random(11)
    journal_before: list[bytes] = []
    killed_mid_compaction = 0
    for _ in range(4):
        writer = Writer(path)
        seq = writer.kill_at_compaction(rng.randint(2, 5))
        if f"compacted {seq}" not in writer.seen:
            killed_mid_compaction += 1
        with SqliteStore(path, WRITER.peer_id) as store:
            journal = list(store.load_parts().journal)
            restored = store.load()
        assert journal[: len(journal_before)] == journal_before  # no old row rewritten or dropped
        seqs = [peek_batch(wire)[1] for wire in journal]
        assert seqs == list(range(1, len(journal) + 1))
        assert set(writer.durable()) <= set(seqs)  # nothing reported durable is lost
        assert restored.seen.max(WRITER.peer_id) == len(journal)
        assert restored.memory.counter("writes").value == len(journal)  # each batch applied once
        journal_before = journal
    assert killed_mid_compaction >= 2, "the kills all landed outside compactions: make them slower"
