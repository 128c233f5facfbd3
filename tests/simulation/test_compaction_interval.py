"""``Scenario.compaction_interval`` (how often each peer's store is compacted) was called
``checkpoint_interval`` before the protocol had author checkpoints: scenarios, reports and
command lines written with the old name still work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crdtmem.cli.simulate import build_parser, scenario_from_args
from crdtmem.cli.simulate import main as simulate_main
from crdtmem.simulation import Scenario

COMMITTED_REPORT = Path(__file__).parents[2] / "simulations" / "crash_restart.json"


def _old_format(scenario: dict) -> dict:
    """``scenario`` as reports wrote it before the rename: the same keys, in the same place."""
    return {("checkpoint_interval" if key == "compaction_interval" else key): value for key, value in scenario.items()}


def test_a_scenario_written_with_the_old_name_loads() -> None:
    scenario = Scenario(peers=4, compaction_interval=2.5)
    old = _old_format(scenario.to_dict())
    assert "compaction_interval" not in old and old["checkpoint_interval"] == 2.5
    assert Scenario.from_dict(json.loads(json.dumps(old))) == scenario
    assert Scenario.from_dict({"peers": 4, "checkpoint_interval": 2.5}) == scenario


def test_a_scenario_giving_both_names_loads_only_if_they_agree() -> None:
    assert Scenario.from_dict({"checkpoint_interval": 3.0, "compaction_interval": 3.0}).compaction_interval == 3.0
    with pytest.raises(ValueError, match="both 'checkpoint_interval'.*'compaction_interval'"):
        Scenario.from_dict({"checkpoint_interval": 3.0, "compaction_interval": 4.0})


def test_an_old_report_replays_from_the_command_line(tmp_path: Path) -> None:
    scenario = json.loads(COMMITTED_REPORT.read_text())["scenario"] | {"duration": 3.0, "compaction_interval": 1.0}
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"scenario": _old_format(scenario)}))
    args = build_parser().parse_args(["--from-report", str(old)])
    assert scenario_from_args(args) == Scenario.from_dict(scenario)
    again = tmp_path / "again.json"
    assert simulate_main(["--from-report", str(old), "-q", "--json", str(again)]) == 0
    written = json.loads(again.read_text())["scenario"]
    assert written["compaction_interval"] == 1.0 and "checkpoint_interval" not in written


def test_the_old_flag_is_a_hidden_deprecated_alias(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    assert "--compaction-interval" in parser.format_help() and "--checkpoint-interval" not in parser.format_help()
    assert scenario_from_args(parser.parse_args(["--compaction-interval", "2s"])).compaction_interval == 2.0
    assert "deprecated" not in capsys.readouterr().err
    assert scenario_from_args(parser.parse_args(["--checkpoint-interval", "3s"])).compaction_interval == 3.0
    assert "--checkpoint-interval is deprecated, use --compaction-interval" in capsys.readouterr().err
    assert scenario_from_args(parser.parse_args([])).compaction_interval == 0.0
