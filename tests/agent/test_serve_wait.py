"""The JSON-lines server's ``wait`` compares set items by their JSON text."""

from __future__ import annotations

import anyio

from crdtmem import Memory
from crdtmem.agent import apply_command
from crdtmem.cli.serve import _wait_values


class _Immediate:
    """A peer stand-in whose wait_for checks the predicate once (the values are already there)."""

    def __init__(self) -> None:
        self.checked: list[bool] = []

    async def wait_for(self, predicate, timeout: float) -> None:
        self.checked.append(predicate())


def test_wait_handles_list_items_in_sets():
    memory = Memory("a")
    apply_command(memory, {"op": "set.add", "name": "pairs", "value": ["sky", "blue"]})
    apply_command(memory, {"op": "set.add", "name": "pairs", "value": {"base64": "AA=="}})
    peer = _Immediate()
    command = {"contains": {"pairs": [["sky", "blue"], {"base64": "AA=="}]}, "equals": {"n": None}}
    values = anyio.run(_wait_values, peer, memory, command)
    assert peer.checked == [True]
    assert values == {"n": None, "pairs": [["sky", "blue"], {"base64": "AA=="}]}


def test_wait_is_not_reached_by_a_missing_list_item():
    memory = Memory("a")
    apply_command(memory, {"op": "set.add", "name": "pairs", "value": ["sky", "blue"]})
    peer = _Immediate()
    anyio.run(_wait_values, peer, memory, {"contains": {"pairs": [["sky", "grey"]]}})
    assert peer.checked == [False]
