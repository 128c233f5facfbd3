"""Settings shared by every test module."""

from collections.abc import Iterator

import pytest
from hypothesis import settings

from tests.natsserver import RUNNING

# Timing is not a property under test: an example must not fail for being slow on a loaded machine.
settings.register_profile("crdtmem", deadline=None)
settings.load_profile("crdtmem")


@pytest.fixture(autouse=True)
def _no_nats_server_left_running() -> Iterator[None]:
    """Fail a test that leaves a ``nats-server`` it started running (and stop it)."""
    yield
    left = list(RUNNING)
    for server in left:
        server.stop()
    assert not left, f"the test left {len(left)} nats-server process(es) running"
