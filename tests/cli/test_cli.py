"""The ``crdtmem`` command: help, keygen, peer (stdin commands, clean shutdown), inspect."""

from __future__ import annotations

import json
import os
import stat

import pytest

from crdtmem.cli import build_parser, main

from ..processes import PeerProcess, keys, run


@pytest.mark.parametrize("command", [[], ["keygen"], ["peer"], ["inspect"], ["demo"]])
def test_every_command_has_help(command, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: crdtmem" in capsys.readouterr().out


def test_version_and_log_level_after_the_subcommand(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("crdtmem ")
    args = build_parser().parse_args(["keygen", "x.key", "--log-level", "DEBUG"])
    assert args.log_level == "DEBUG"
    assert build_parser().parse_args(["--log-level", "INFO", "keygen", "x.key"]).log_level == "INFO"


def test_keygen_writes_a_private_key_and_prints_the_keyring_line(tmp_path) -> None:
    path = tmp_path / "alice.key"
    result = run("keygen", str(path))
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert result.stdout.startswith("ed25519:") and len(result.stdout.splitlines()) == 1
    assert "peer id:" in result.stderr
    again = run("keygen", str(path))
    assert again.returncode == 1 and "exists" in again.stderr


def test_peer_reports_durable_writes_and_inspect_reads_them_after_sigterm(tmp_path) -> None:
    trust = keys(tmp_path, ["solo"])
    peer = PeerProcess(tmp_path, "solo", trust)
    try:
        peer.send({"op": "counter.increment", "name": "tasks", "n": 2, "id": 1})
        peer.send({"op": "set.add", "name": "facts", "value": "water is wet", "id": 2})
        peer.send({"op": "register.assign", "name": "status", "value": {"phase": "done"}, "id": 3})
        peer.send({"op": "map.put", "name": "board", "key": "t1", "value": "open", "id": 4})
        peer.send({"op": "text.append", "name": "notes", "text": "hello", "id": 5})
        for ident in range(1, 6):
            peer.expect(lambda m, i=ident: m.get("durable") == i)
        bad = peer.ask({"op": "no.such", "name": "x", "id": 6})
        assert "unknown op" in bad["error"]
        values = peer.ask({"op": "values", "id": 7})["values"]
        assert values["tasks"] == 2 and values["facts"] == ["water is wet"]
    finally:
        code = peer.stop()
    assert code == 0, peer.stderr()
    result = run("inspect", "--db", str(tmp_path / "solo.db"), "--json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["values"]["tasks"] == 2
    assert shown["values"]["status"] == {"phase": "done"}
    assert shown["values"]["board"] == {"t1": "open"}
    assert shown["values"]["notes"] == {"text": "hello"}
    table = run("inspect", "--db", str(tmp_path / "solo.db"))
    assert table.returncode == 0 and "facts" in table.stdout and "water is wet" in table.stdout


def test_peer_answers_wait_when_values_arrive_and_watch_prints_each_change(tmp_path) -> None:
    trust = keys(tmp_path, ["a", "b"])
    a = PeerProcess(tmp_path, "a", trust)
    b = PeerProcess(tmp_path, "b", trust, connect=[a.url])
    try:
        assert b.ask({"op": "sync", "peers": 1, "timeout": 20, "id": "up"})["synced"]
        assert a.ask({"op": "watch", "prefix": "f", "id": "w"})["watching"] == "f"
        a.send({"op": "wait", "contains": {"facts": ["x", "y"]}, "equals": {"n": 3}, "timeout": 20, "id": "both"})
        b.send({"op": "set.add", "name": "facts", "value": "x", "id": 1})
        changed = a.expect(lambda m: m.get("changed") == "facts")
        assert changed["value"] == ["x"] and isinstance(changed["at"], float)
        b.send({"op": "set.add", "name": "facts", "value": "y", "id": 2})
        b.send({"op": "counter.increment", "name": "n", "n": 3, "id": 3})
        answer = a.expect(lambda m: m.get("id") == "both", timeout=25)
        assert answer["values"] == {"facts": ["x", "y"], "n": 3}
        late = a.ask({"op": "wait", "equals": {"n": 4}, "timeout": 0.2, "id": "never"})
        assert late["error"] == "timeout"
    finally:
        b.stop()
        a.stop()


def test_peer_flushes_writes_waiting_on_stdin_together_and_answers_in_order(tmp_path) -> None:
    trust = keys(tmp_path, ["solo"])
    peer = PeerProcess(tmp_path, "solo", trust)
    try:
        peer.send({"op": "counter.increment", "name": "hits", "n": 1, "id": 0})
        peer.expect(lambda m: m.get("durable") == 0)
        before = peer.ask({"op": "metrics", "id": "before"})["metrics"]["stats"]["batches_created"]
        commands = [{"op": "counter.increment", "name": "hits", "n": 1, "id": i} for i in range(1, 11)]
        commands[4] = {"op": "counter.increment", "name": "hits", "n": "x", "id": 5}  # refused
        commands.append({"op": "values", "id": "values"})
        # one write to the pipe: the peer reads these lines at once, as a writer it fell behind of
        peer.proc.stdin.write("".join(json.dumps(c) + "\n" for c in commands))
        peer.proc.stdin.flush()
        answers = [peer.expect(lambda m: "durable" in m or "id" in m, timeout=15) for _ in commands]
        assert [a.get("durable", a.get("id")) for a in answers] == [*range(1, 11), "values"]
        assert "error" in answers[4] and answers[-1]["values"]["hits"] == 10  # 1 + the nine valid ones
        after = peer.ask({"op": "metrics", "id": "after"})["metrics"]["stats"]["batches_created"]
        assert after - before == 2  # the four writes before the refused one, then the five after it
    finally:
        peer.stop()


def test_peer_flags_cap_connections(tmp_path) -> None:
    trust = keys(tmp_path, ["a", "b", "c"])
    a = PeerProcess(tmp_path, "a", trust, extra=["--max-connections", "1", "--max-receive-messages", "500"])
    b = PeerProcess(tmp_path, "b", trust, connect=[a.url])
    c = None
    try:
        assert b.ask({"op": "sync", "peers": 1, "timeout": 20, "id": "up"})["synced"]
        c = PeerProcess(tmp_path, "c", trust, connect=[a.url])  # only once b holds a's one slot
        c.send({"op": "set.add", "name": "facts", "value": "from c", "id": 1})
        refused = a.ask({"op": "wait", "contains": {"facts": ["from c"]}, "timeout": 1, "id": "c"}, timeout=10)
        assert refused["error"] == "timeout"  # c's every dial is refused: a holds one link, b's
        metrics = a.ask({"op": "metrics", "id": "m"})["metrics"]
        assert metrics["refusals"].get("too-many-connections", 0) >= 1 and metrics["connected_peers"] == 1
    finally:
        for p in (c, b, a):
            if p is not None:
                p.stop()


def test_peer_refuses_a_store_written_by_another_peer(tmp_path) -> None:
    trust = keys(tmp_path, ["a", "b"])
    first = PeerProcess(tmp_path, "a", trust)
    first.stop()
    before = (tmp_path / "a.db").read_bytes()
    result = run("peer", "--key", str(tmp_path / "b.key"), "--trust", str(trust), "--listen", "ws://127.0.0.1:0",
                 "--db", str(tmp_path / "a.db"), "--no-stdin", timeout=30)
    assert result.returncode == 3
    assert "belongs to peer" in result.stderr
    assert (tmp_path / "a.db").read_bytes() == before


def test_inspect_refuses_a_corrupt_store(tmp_path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"junk" * 100)
    result = run("inspect", "--db", str(path))
    assert result.returncode == 3 and "error:" in result.stderr
    assert path.read_bytes() == b"junk" * 100


def test_peer_explains_bad_addresses_and_missing_files_in_one_line(tmp_path) -> None:
    import socket

    trust = keys(tmp_path, ["solo"])
    key = str(tmp_path / "solo.key")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cases = {
            ("--key", key, "--trust", str(trust), "--listen", "127.0.0.1:9"): "is not an address like ws://",
            ("--key", key, "--trust", str(trust), "--connect", "bob:8765"): "is not an address like ws://",
            ("--key", str(tmp_path / "nope.key"), "--trust", str(trust)): "crdtmem keygen",
            ("--key", key, "--trust", str(tmp_path / "nope.keys")): "cannot read the keyring",
            ("--key", key, "--trust", str(trust), "--listen", f"ws://127.0.0.1:{port}"): "cannot listen on",
        }
        for flags, message in cases.items():
            result = run("peer", *flags, "--no-stdin")
            assert result.returncode == 2, (flags, result.stderr)
            assert message in result.stderr and "Traceback" not in result.stderr, (flags, result.stderr)
            assert len(result.stderr.strip().splitlines()) == 1, result.stderr
