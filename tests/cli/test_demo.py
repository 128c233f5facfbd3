"""``crdtmem demo`` runs end to end over real websockets and exits 0 (converged)."""

from __future__ import annotations

from ..processes import run


def test_demo_converges_and_exits_zero() -> None:
    result = run("demo", "--seed", "1", timeout=60)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "CONVERGED" in out
    assert "catch-up bytes (signed batches)" in out and "signed batches applied" in out
    for name in ("alice", "bob", "carol"):
        assert f"{name}'s memory" in out


def test_quiet_demo_prints_only_its_verdict() -> None:
    result = run("demo", "--seed", "2", "--quiet", timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("CONVERGED: all three peers hold identical memory")
    assert len(result.stdout.splitlines()) == 1


def test_demo_piped_into_a_reader_that_stops_early_ends_without_a_traceback() -> None:
    import subprocess

    from ..processes import crdtmem_cmd

    proc = subprocess.Popen(crdtmem_cmd("demo", "--seed", "3"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()  # `| head -1`
    try:
        stderr = proc.stderr.read().decode()
        code = proc.wait(timeout=60)
    finally:
        proc.kill()
    assert "Traceback" not in stderr
    assert code == 0, stderr
