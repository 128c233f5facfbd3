"""Tests of the anyio runtime's parts: options, health, links and the peer's lifecycle."""
