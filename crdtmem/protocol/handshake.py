"""The mutual challenge–response handshake that opens every connection (see ``framing``).

Both sides send ``Hello`` (version, public key, a fresh nonce) at once; each answers the
other's hello with ``Auth``, a signature over both nonces and both peer ids, and when the
peer's auth verifies both hold the same session id for their :class:`FrameChannel`. Keys
outside the keyring, other versions and bad signatures are refused with a specific reason.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from typing import Any

from .. import codec
from ..errors import DecodeError
from ..identity import KEY_BYTES, Identity, Keyring, peer_id_of, verify
from .framing import (
    MAX_HANDSHAKE_BYTES,
    NONCE_BYTES,
    PROTOCOL_VERSION,
    SESSION_ID_BYTES,
    BadHandshakeSignatureError,
    HandshakeStateError,
    MalformedHandshakeError,
    MissingSignatureError,
    OversizedFrameError,
    SelfConnectionError,
    UnexpectedHandshakeMessageError,
    UntrustedKeyError,
    VersionMismatchError,
)

_AUTH_DOMAIN = b"crdtmem-auth"
_SESSION_PERSON = b"crdtmem-session"

__all__ = [
    "Hello",
    "Auth",
    "make_hello",
    "make_auth",
    "verify_auth",
    "auth_transcript",
    "decode_handshake_message",
    "session_id_of",
    "HandshakeState",
    "Handshake",
]


@dataclass(frozen=True)
class Hello:
    """First handshake message: protocol version, public key and a fresh 32-byte nonce."""

    version: int
    public_key: bytes
    nonce: bytes

    def encode(self) -> bytes:
        return codec.pack(["hello", self.version, self.public_key, self.nonce])


@dataclass(frozen=True)
class Auth:
    """Second handshake message: the signature over :func:`auth_transcript`."""

    signature: bytes

    def encode(self) -> bytes:
        return codec.pack(["auth", self.signature])


def decode_handshake_message(data: bytes) -> Hello | Auth:
    """Parse a hello or an auth from the peer, strictly.

    Raises:
        OversizedFrameError, MalformedHandshakeError, VersionMismatchError (a hello of
        another version), MissingSignatureError (an auth without a signature).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MalformedHandshakeError(f"a handshake message is bytes, got {type(data).__name__}")
    if len(data) > MAX_HANDSHAKE_BYTES:
        raise OversizedFrameError(f"{len(data)}-byte handshake message exceeds {MAX_HANDSHAKE_BYTES} bytes")
    try:
        parts = codec.unpack(data, max_size=MAX_HANDSHAKE_BYTES)
    except DecodeError as exc:
        raise MalformedHandshakeError(str(exc)) from None
    if not isinstance(parts, list) or not parts:
        raise MalformedHandshakeError("a handshake message is msgpack [kind, ...]")
    kind = parts[0]
    if kind == "hello":
        if len(parts) < 2 or type(parts[1]) is not int:
            raise MalformedHandshakeError("hello without a protocol version")
        if parts[1] != PROTOCOL_VERSION:  # checked before the rest: other versions may differ
            raise VersionMismatchError(f"peer speaks protocol version {parts[1]}, this peer {PROTOCOL_VERSION}")
        if len(parts) != 4:
            raise MalformedHandshakeError("a hello is [\"hello\", version, public_key, nonce]")
        _, version, public_key, nonce = parts
        if not isinstance(public_key, bytes) or len(public_key) != KEY_BYTES:
            raise MalformedHandshakeError(f"hello public key is not {KEY_BYTES} bytes")
        if not isinstance(nonce, bytes) or len(nonce) != NONCE_BYTES:
            raise MalformedHandshakeError(f"hello nonce is not {NONCE_BYTES} bytes")
        return Hello(version, public_key, nonce)
    if kind == "auth":
        if len(parts) == 1 or (len(parts) == 2 and parts[1] in (None, b"")):
            raise MissingSignatureError("auth carries no signature")
        if len(parts) != 2 or not isinstance(parts[1], bytes):
            raise MalformedHandshakeError("an auth is [\"auth\", signature]")
        return Auth(parts[1])
    raise MalformedHandshakeError(f"unknown handshake message kind {kind!r}")


def make_hello(identity: Identity, nonce: bytes) -> bytes:
    """The encoded hello for ``identity`` with the caller's fresh random 32-byte ``nonce``."""
    _check_nonce(nonce)
    return Hello(PROTOCOL_VERSION, identity.public_key, bytes(nonce)).encode()


def auth_transcript(*, signer_nonce: bytes, other_nonce: bytes, signer_id: str, other_id: str) -> bytes:
    """The bytes an auth signs, from the signer's point of view."""
    return codec.pack([_AUTH_DOMAIN, PROTOCOL_VERSION, signer_nonce, other_nonce, signer_id, other_id])


def make_auth(identity: Identity, *, my_nonce: bytes, their_nonce: bytes, their_peer_id: str) -> bytes:
    """The encoded auth: ``identity`` signs both nonces and both peer ids."""
    transcript = auth_transcript(
        signer_nonce=my_nonce, other_nonce=their_nonce, signer_id=identity.peer_id, other_id=their_peer_id
    )
    return Auth(identity.sign(transcript)).encode()


def verify_auth(
    auth: Auth, *, their_public_key: bytes, their_nonce: bytes, my_nonce: bytes, my_peer_id: str
) -> None:
    """Check the peer's auth: its key signed its nonce, our nonce, its id and ours.

    Raises:
        MissingSignatureError: the auth has no signature.
        BadHandshakeSignatureError: it does not verify (wrong key, nonce or peer id).
    """
    if not auth.signature:
        raise MissingSignatureError("auth carries no signature")
    transcript = auth_transcript(
        signer_nonce=their_nonce, other_nonce=my_nonce, signer_id=peer_id_of(their_public_key), other_id=my_peer_id
    )
    if not verify(their_public_key, auth.signature, transcript):
        raise BadHandshakeSignatureError(
            f"auth from {peer_id_of(their_public_key)} does not sign this handshake's nonces and peer ids"
        )


def session_id_of(nonce_a: bytes, nonce_b: bytes) -> bytes:
    """The 32-byte session id both sides derive from the two nonces (order does not matter)."""
    low, high = sorted((bytes(nonce_a), bytes(nonce_b)))
    return hashlib.blake2b(low + high, digest_size=SESSION_ID_BYTES, person=_SESSION_PERSON).digest()


def _check_nonce(nonce: Any) -> None:
    if not isinstance(nonce, (bytes, bytearray)) or len(nonce) != NONCE_BYTES:
        raise ValueError(f"a nonce is {NONCE_BYTES} random bytes from the caller")


class HandshakeState(enum.Enum):
    """Where a :class:`Handshake` is. Transitions: IDLE → SENT_HELLO → SENT_AUTH → DONE; any → FAILED."""

    IDLE = "idle"
    """Created; call :meth:`Handshake.start`."""
    SENT_HELLO = "sent-hello"
    """Our hello is out; waiting for the peer's hello."""
    SENT_AUTH = "sent-auth"
    """The peer's hello was accepted and our auth is out; waiting for the peer's auth."""
    DONE = "done"
    """The peer is authenticated; build a :class:`FrameChannel`."""
    FAILED = "failed"
    """A refusal was raised; drop the connection."""


class Handshake:
    """Mutual challenge–response for one connection, as an explicit state machine.

    Both sides run the same steps, whoever dialed::

        hs = Handshake(identity, keyring, nonce=rng.randbytes(32))
        send(hs.start())                 # [hello]
        for data in incoming:            # until hs.done
            send(hs.receive(data))       # [auth] after the peer's hello, [] after its auth
        channel = FrameChannel(identity, hs.peer_public_key, hs.session_id)

    Args:
        identity: this side's key.
        keyring: the keys allowed to connect.
        nonce: 32 fresh random bytes from the caller (never reuse one).
    """

    def __init__(self, identity: Identity, keyring: Keyring, nonce: bytes) -> None:
        _check_nonce(nonce)
        self.identity = identity
        self.keyring = keyring
        self.nonce = bytes(nonce)
        self.state = HandshakeState.IDLE
        self.peer_public_key: bytes | None = None
        """The peer's raw key, once its hello is accepted."""
        self.peer_id: str | None = None
        self.peer_nonce: bytes | None = None
        self.session_id: bytes | None = None
        """Set when :attr:`done`."""

    @property
    def done(self) -> bool:
        return self.state is HandshakeState.DONE

    def start(self) -> list[bytes]:
        """Call once, right after the connection opens; returns the messages to send."""
        if self.state is not HandshakeState.IDLE:
            raise HandshakeStateError(f"start() in state {self.state.value}")
        self.state = HandshakeState.SENT_HELLO
        return [make_hello(self.identity, self.nonce)]

    def receive(self, data: bytes) -> list[bytes]:
        """Handle one handshake message from the peer; returns the messages to send.

        Raises:
            HandshakeStateError: called before :meth:`start` or after the handshake ended.
            A refusal (see :data:`REFUSAL_REASONS`): the state becomes FAILED.
        """
        if self.state not in (HandshakeState.SENT_HELLO, HandshakeState.SENT_AUTH):
            raise HandshakeStateError(f"receive() in state {self.state.value}")
        try:
            return self._receive(decode_handshake_message(data))
        except Exception:
            self.state = HandshakeState.FAILED
            raise

    def _receive(self, message: Hello | Auth) -> list[bytes]:
        if self.state is HandshakeState.SENT_HELLO:
            if not isinstance(message, Hello):
                raise UnexpectedHandshakeMessageError("expected the peer's hello, got an auth")
            if message.public_key == self.identity.public_key:
                raise SelfConnectionError("the peer presents our own public key (a loop, or two peers share a key file)")
            if message.nonce == self.nonce:
                raise SelfConnectionError("the peer's hello echoes our nonce")
            if message.public_key not in self.keyring:
                raise UntrustedKeyError(f"peer {peer_id_of(message.public_key)} is not in the keyring")
            self.peer_public_key, self.peer_nonce = message.public_key, message.nonce
            self.peer_id = peer_id_of(message.public_key)
            self.state = HandshakeState.SENT_AUTH
            return [make_auth(self.identity, my_nonce=self.nonce, their_nonce=message.nonce, their_peer_id=self.peer_id)]
        if not isinstance(message, Auth):
            raise UnexpectedHandshakeMessageError("expected the peer's auth, got a second hello")
        assert self.peer_public_key is not None and self.peer_nonce is not None
        verify_auth(
            message,
            their_public_key=self.peer_public_key,
            their_nonce=self.peer_nonce,
            my_nonce=self.nonce,
            my_peer_id=self.identity.peer_id,
        )
        self.session_id = session_id_of(self.nonce, self.peer_nonce)
        self.state = HandshakeState.DONE
        return []
