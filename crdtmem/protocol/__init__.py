"""The peer protocol as pure state machines: handshake, signed framing, messages and the Node.

Nothing in this package performs I/O or reads the clock; shells move the bytes.
"""

__all__: list[str] = []
