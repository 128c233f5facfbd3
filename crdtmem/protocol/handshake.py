"""The mutual challenge–response handshake that opens every connection (see ``framing``).

Both sides send ``Hello`` (version, public key, a fresh nonce, a fresh X25519 exchange key)
at once; each answers the other's hello with ``Auth``, a signature over both nonces, both
peer ids and both exchange keys. When the peer's auth verifies, both hold the same session id
and the two direction keys for their :class:`FrameChannel`. Keys outside the keyring, other
versions, bad signatures and unusable exchange keys are refused with a specific reason. The
keys are known from the peer's hello (:meth:`Handshake.sealing_keys`), so a dialer's first
frame can ride with its auth; none of the peer's frames is opened before its auth verifies.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .. import codec
from ..errors import DecodeError
from ..identity import KEY_BYTES, Identity, Keyring, format_public_key, peer_id_of, verify
from .framing import (
    MAX_HANDSHAKE_BYTES,
    NONCE_BYTES,
    PROTOCOL_VERSION,
    FRAME_KEY_BYTES,
    SESSION_ID_BYTES,
    BadHandshakeSignatureError,
    BadKeyExchangeError,
    HandshakeStateError,
    MalformedHandshakeError,
    MissingSignatureError,
    OversizedFrameError,
    SelfConnectionError,
    UnexpectedHandshakeMessageError,
    SessionKeys,
    UntrustedKeyError,
    VersionMismatchError,
)

_AUTH_DOMAIN = b"crdtmem-auth"
_SESSION_PERSON = b"crdtmem-session"
_FRAME_KEYS_INFO = b"crdtmem-frame-keys"
EXCHANGE_KEY_BYTES = 32

__all__ = [
    "Hello",
    "Auth",
    "make_auth",
    "verify_auth",
    "auth_transcript",
    "decode_handshake_message",
    "session_id_of",
    "derive_session_keys",
    "HandshakeState",
    "Handshake",
]


@dataclass(frozen=True)
class Hello:
    """First handshake message: protocol version, public key, a fresh nonce and exchange key."""

    version: int
    public_key: bytes
    nonce: bytes
    exchange_key: bytes

    def encode(self) -> bytes:
        return codec.pack(["hello", self.version, self.public_key, self.nonce, self.exchange_key])


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
        if len(parts) != 5:
            raise MalformedHandshakeError("a hello is [\"hello\", version, public_key, nonce, exchange_key]")
        _, version, public_key, nonce, exchange_key = parts
        if not isinstance(public_key, bytes) or len(public_key) != KEY_BYTES:
            raise MalformedHandshakeError(f"hello public key is not {KEY_BYTES} bytes")
        if not isinstance(nonce, bytes) or len(nonce) != NONCE_BYTES:
            raise MalformedHandshakeError(f"hello nonce is not {NONCE_BYTES} bytes")
        if not isinstance(exchange_key, bytes) or len(exchange_key) != EXCHANGE_KEY_BYTES:
            raise MalformedHandshakeError(f"hello exchange key is not {EXCHANGE_KEY_BYTES} bytes")
        return Hello(version, public_key, nonce, exchange_key)
    if kind == "auth":
        if len(parts) == 1 or (len(parts) == 2 and parts[1] in (None, b"")):
            raise MissingSignatureError("auth carries no signature")
        if len(parts) != 2 or not isinstance(parts[1], bytes):
            raise MalformedHandshakeError("an auth is [\"auth\", signature]")
        return Auth(parts[1])
    raise MalformedHandshakeError(f"unknown handshake message kind {kind!r}")


def auth_transcript(signer: Hello, other: Hello) -> bytes:
    """The bytes an auth signs: both nonces, both peer ids and both exchange keys, signer's first."""
    return codec.pack([
        _AUTH_DOMAIN, PROTOCOL_VERSION, signer.nonce, other.nonce, peer_id_of(signer.public_key),
        peer_id_of(other.public_key), signer.exchange_key, other.exchange_key,
    ])


def make_auth(identity: Identity, mine: Hello, theirs: Hello) -> bytes:
    """The encoded auth: ``identity`` (whose hello is ``mine``) signs both hellos."""
    return Auth(identity.sign(auth_transcript(mine, theirs))).encode()


def verify_auth(auth: Auth, mine: Hello, theirs: Hello) -> None:
    """Check the peer's auth: its key signed both hellos, its own first.

    Raises:
        MissingSignatureError: the auth has no signature.
        BadHandshakeSignatureError: it does not verify (wrong key, nonce, peer id or exchange key).
    """
    if not auth.signature:
        raise MissingSignatureError("auth carries no signature")
    if not verify(theirs.public_key, auth.signature, auth_transcript(theirs, mine)):
        their_id = peer_id_of(theirs.public_key)
        raise BadHandshakeSignatureError(f"auth from {their_id} does not sign this handshake's nonces, ids and keys")


def session_id_of(nonce_a: bytes, nonce_b: bytes) -> bytes:
    """The 32-byte session id both sides derive from the two nonces (order does not matter)."""
    low, high = sorted((bytes(nonce_a), bytes(nonce_b)))
    return hashlib.blake2b(low + high, digest_size=SESSION_ID_BYTES, person=_SESSION_PERSON).digest()


def derive_session_keys(
    secret: X25519PrivateKey, their_exchange_key: bytes, session_id: bytes, my_id: str, their_id: str
) -> SessionKeys:
    """The two frame keys from our exchange secret and the peer's exchange key.

    HKDF-SHA256 over the X25519 shared secret, salted with the session id, gives one key per
    direction; the side with the smaller peer id sends with the first.

    Raises:
        BadKeyExchangeError: the peer's key is a low-order point (the shared secret is zero).
    """
    try:
        shared = secret.exchange(X25519PublicKey.from_public_bytes(their_exchange_key))
    except ValueError:
        raise BadKeyExchangeError(f"{their_id}'s exchange key gives no shared secret") from None
    hkdf = HKDF(algorithm=hashes.SHA256(), length=2 * FRAME_KEY_BYTES, salt=session_id, info=_FRAME_KEYS_INFO)
    material = hkdf.derive(shared)
    low_to_high, high_to_low = material[:FRAME_KEY_BYTES], material[FRAME_KEY_BYTES:]
    if my_id < their_id:
        return SessionKeys(send=low_to_high, receive=high_to_low)
    return SessionKeys(send=high_to_low, receive=low_to_high)


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

        hs = Handshake(identity, keyring, nonce=rng.randbytes(32), secret=rng.randbytes(32))
        send(hs.start())                 # [hello]
        for data in incoming:            # until hs.done
            send(hs.receive(data))       # [auth] after the peer's hello, [] after its auth
        channel = FrameChannel(hs.keys, peer_id=hs.peer_id)

    Args:
        identity: this side's key.
        keyring: the keys allowed to connect.
        nonce: 32 fresh random bytes from the caller (never reuse one).
        secret: 32 more fresh random bytes: this connection's X25519 exchange secret.
    """

    def __init__(self, identity: Identity, keyring: Keyring, nonce: bytes, secret: bytes) -> None:
        _check_nonce(nonce)
        if not isinstance(secret, (bytes, bytearray)) or len(secret) != EXCHANGE_KEY_BYTES:
            raise ValueError(f"a secret is {EXCHANGE_KEY_BYTES} random bytes from the caller")
        self.identity = identity
        self.keyring = keyring
        self.nonce = bytes(nonce)
        self._secret = X25519PrivateKey.from_private_bytes(bytes(secret))
        self._hello = Hello(PROTOCOL_VERSION, identity.public_key, self.nonce, self._secret.public_key().public_bytes_raw())
        self._peer_hello: Hello | None = None
        self.state = HandshakeState.IDLE
        self.peer_public_key: bytes | None = None
        """The peer's raw key, once its hello is accepted."""
        self.peer_id: str | None = None
        self.peer_nonce: bytes | None = None
        self.session_id: bytes | None = None
        """Set when :attr:`done`."""
        self.keys: SessionKeys | None = None
        """The frame keys, set when :attr:`done`."""
        self._derived: SessionKeys | None = None  # the frame keys, once derived from the peer's hello

    @property
    def done(self) -> bool:
        return self.state is HandshakeState.DONE

    def start(self) -> list[bytes]:
        """Call once, right after the connection opens; returns the messages to send."""
        if self.state is not HandshakeState.IDLE:
            raise HandshakeStateError(f"start() in state {self.state.value}")
        self.state = HandshakeState.SENT_HELLO
        return [self._hello.encode()]

    def sealing_keys(self) -> SessionKeys:
        """The frame keys agreed by the peer's accepted hello, before its auth is checked.

        Call it after the peer's hello, to seal a message that rides with our auth (the
        dialer's first ``Sync``, so the peer can answer it as soon as our auth verifies there).
        What is sealed reaches the holder of the hello's exchange key, who may not yet be proven
        to hold the hello's identity key: seal only what the wire may show (frames are
        authenticated, not encrypted). Never open the peer's frames before :attr:`done`:
        :attr:`keys` is set only once its auth verifies.

        Raises:
            HandshakeStateError: the peer's hello has not been accepted.
            BadKeyExchangeError: its exchange key gives no shared secret; the state becomes FAILED.
        """
        if self.state not in (HandshakeState.SENT_AUTH, HandshakeState.DONE):
            raise HandshakeStateError(f"sealing_keys() in state {self.state.value}")
        try:
            return self._derive()
        except Exception:
            self.state = HandshakeState.FAILED
            raise

    def _derive(self) -> SessionKeys:
        """The frame keys from our secret and the peer's hello, derived once."""
        if self._derived is None:
            assert self._peer_hello is not None and self.peer_id is not None
            session_id = session_id_of(self.nonce, self._peer_hello.nonce)
            self._derived = derive_session_keys(
                self._secret, self._peer_hello.exchange_key, session_id, self.identity.peer_id, self.peer_id
            )
        return self._derived

    def receive(self, data: bytes) -> list[bytes]:
        """Handle one handshake message from the peer; returns the messages to send.

        Raises:
            HandshakeStateError: called before :meth:`start` or after the handshake ended.
            RemoteProtocolError: a refusal naming its ``reason``; the state becomes FAILED.
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
                raise UntrustedKeyError(
                    f"peer {peer_id_of(message.public_key)} is not in the keyring; to trust it, add this line "
                    f"to the keyring or ask an admin to admit it: {format_public_key(message.public_key)}"
                )
            self.peer_public_key, self.peer_nonce = message.public_key, message.nonce
            self.peer_id = peer_id_of(message.public_key)
            self._peer_hello = message
            self.state = HandshakeState.SENT_AUTH
            return [make_auth(self.identity, self._hello, message)]
        if not isinstance(message, Auth):
            raise UnexpectedHandshakeMessageError("expected the peer's auth, got a second hello")
        assert self._peer_hello is not None and self.peer_id is not None
        verify_auth(message, self._hello, self._peer_hello)
        self.keys = self._derive()
        self.session_id = session_id_of(self.nonce, self._peer_hello.nonce)
        self.state = HandshakeState.DONE
        return []
