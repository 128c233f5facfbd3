"""The README's quick start runs as written, twice in a row in the same directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def _quick_start() -> str:
    section = README.read_text().split("## Quick start", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_quick_start_runs_twice_in_a_row(tmp_path: Path) -> None:
    script = tmp_path / "quickstart.py"
    script.write_text(_quick_start())
    outputs = []
    for _ in range(2):
        result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                                cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        outputs.append(result.stdout.strip())
    assert outputs[0].startswith("frozenset({'the build is green'}) 1 ")
    assert outputs[1].startswith("frozenset({'the build is green'}) 2 "), "the second run loads keys and stores"
    assert sorted(p.name for p in tmp_path.glob("*.key")) == ["alice.key", "bob.key"]


def test_keygen_appended_to_a_file_builds_a_keyring(tmp_path: Path) -> None:
    crdtmem = f"{sys.executable} -m crdtmem"
    script = f"{crdtmem} keygen a.key >> team.keys && {crdtmem} keygen b.key >> team.keys"
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    from crdtmem.storage.keyfiles import load_identity, load_keyring

    keyring = load_keyring(tmp_path / "team.keys")
    assert keyring.peer_ids == [load_identity(tmp_path / name).peer_id for name in ("a.key", "b.key")]
    assert "peer id:" in result.stderr, "the informational lines go to stderr"
