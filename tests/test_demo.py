"""``crdtmem demo`` runs end to end over real websockets and exits 0 (converged)."""

from __future__ import annotations

from .procs import run


def test_demo_converges_and_exits_zero() -> None:
    result = run("demo", "--seed", "1", timeout=60)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "CONVERGED" in out
    assert "Merkle repair bytes" in out and "round trips" in out
    for name in ("alice", "bob", "carol"):
        assert f"{name}'s memory" in out
