"""Ed25519 identities, peer ids and the keyring of trusted peers.

A peer's identity is one Ed25519 key pair. Its **peer id** is a short, stable fingerprint of
the public key (16 lowercase base32 characters of a BLAKE2b digest).

Every start of a peer writes under a fresh **incarnation** of its identity: the replica id
``<peer id>.<8 base32 characters>`` (:func:`new_incarnation`), so two processes sharing a key,
or a restart that lost its store, never write under the same dots or sequence numbers. The key
signs for all its incarnations: :func:`key_id_of` names the key that may author a replica id
(a bare peer id is its own key's, as plain memories and tests use it).

Text forms, all line-based so they diff and paste well:

* public key: ``ed25519:<standard base64 of the 32 raw bytes>``, optionally followed by
  whitespace and a free-text comment (``ed25519:AbC...= alice@laptop``);
* keyring file: one public key per line, ``#`` comments and blank lines ignored; the token
  ``+admin`` after a key (and its comment) marks an admin, who may admit and revoke members at
  runtime (``ed25519:AbC...= alice@laptop +admin``);
* private key file (mode 0600, written atomically)::

      crdtmem-ed25519-private-key-v1
      <standard base64 of the 32 raw private bytes>
      # public key: ed25519:...
      # peer id: ...

  Lines starting with ``#`` are comments; the two others must appear in that order.

Nothing here reads the clock, the network or a file (key files are read and written by
:mod:`crdtmem.storage.keyfiles`); randomness is used only by :meth:`Identity.generate`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import random
from collections.abc import Iterator

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

__all__ = [
    "KEY_BYTES",
    "SIGNATURE_BYTES",
    "PRIVATE_KEY_HEADER",
    "Identity",
    "Keyring",
    "verify",
    "peer_id_of",
    "parse_public_key",
    "format_public_key",
    "is_weak_public_key",
    "INCARNATION_SEPARATOR",
    "key_id_of",
    "new_incarnation",
]

KEY_BYTES = 32
SIGNATURE_BYTES = 64
PRIVATE_KEY_HEADER = "crdtmem-ed25519-private-key-v1"
_TEXT_PREFIX = "ed25519:"
_ADMIN = "+admin"
_PEER_ID_DIGEST_BYTES = 10  # 80 bits -> exactly 16 base32 characters, no padding

# Ed25519 public keys of small order (the y coordinates of the 8 torsion points) verify
# forged signatures — the all-zero key with an all-zero signature "signs" many messages, and
# OpenSSL does not refuse them — so they are never trusted nor used to verify (libsodium, which
# verifies here, refuses them too).
_P = 2**255 - 19
_SMALL_ORDER_Y = frozenset(
    {0, 1, _P - 1}
    | {int.from_bytes(bytes.fromhex(h), "little") for h in (
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    )}
)


# -- incarnations -------------------------------------------------------------------------------

INCARNATION_SEPARATOR = "."
"""Between a peer id and its incarnation tag in a replica id (never a base32 character)."""
_INCARNATION_BITS = 40  # 8 base32 characters: 1,000 starts of one key collide with odds below 1e-6


def key_id_of(replica_id: str) -> str:
    """The peer id of the key that signs for ``replica_id`` (an incarnation, or a bare peer id).

    Call wherever an author's key is looked up: the keyring holds keys by peer id, and a key
    may author batches under every incarnation of itself and no other.
    """
    return replica_id.partition(INCARNATION_SEPARATOR)[0]


def new_incarnation(peer_id: str, rng: random.Random) -> str:
    """A fresh replica id for one start of the peer ``peer_id``: ``<peer id>.<tag>``.

    Call once per start, before the first local write; pass an unpredictable ``rng``
    (``random.SystemRandom()``) in production, a seeded one in simulations.
    """
    tag = rng.getrandbits(_INCARNATION_BITS).to_bytes(_INCARNATION_BITS // 8, "big")
    return f"{peer_id}{INCARNATION_SEPARATOR}{base64.b32encode(tag).decode('ascii').lower()}"


# -- public keys --------------------------------------------------------------------------------


def peer_id_of(public_key: bytes) -> str:
    """The peer id (and CRDT replica id) of a raw 32-byte Ed25519 public key.

    Raises:
        ValueError: ``public_key`` is not 32 bytes.
    """
    key = _raw_key(public_key, "public key")
    digest = hashlib.blake2b(key, digest_size=_PEER_ID_DIGEST_BYTES, person=b"crdtmem-peer-id").digest()
    return base64.b32encode(digest).decode("ascii").lower()


def is_weak_public_key(public_key: bytes) -> bool:
    """True for the small-order Ed25519 keys (any encoding) that can verify forged signatures."""
    y = int.from_bytes(bytes(public_key), "little") & ((1 << 255) - 1)  # drop the x sign bit
    return y % _P in _SMALL_ORDER_Y


def format_public_key(public_key: bytes, comment: str | None = None) -> str:
    """The one-line text form ``ed25519:<base64> [comment]`` of a raw public key."""
    text = _TEXT_PREFIX + base64.b64encode(_raw_key(public_key, "public key")).decode("ascii")
    if comment:
        comment = " ".join(comment.split())  # keep it on one line
        if comment:
            text += " " + comment
    return text


def parse_public_key(text: str) -> bytes:
    """Raw 32 public-key bytes from ``ed25519:<base64>`` with an optional trailing comment.

    Raises:
        ValueError: the text is not exactly one such key (the message says what is wrong).
    """
    return _parse_public_key_line(text)[0]


def _parse_public_key_line(text: str) -> tuple[bytes, str | None]:
    if not isinstance(text, str):
        raise ValueError(f"expected a public key as text, got {type(text).__name__}")
    parts = text.strip().split(None, 1)
    if not parts:
        raise ValueError("empty public key: expected 'ed25519:<base64>'")
    token = parts[0]
    if not token.startswith(_TEXT_PREFIX):
        raise ValueError(f"public key {_shorten(token)!r} does not start with {_TEXT_PREFIX!r}")
    encoded = token[len(_TEXT_PREFIX):]
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"public key {_shorten(token)!r} is not valid base64") from None
    if len(raw) != KEY_BYTES:
        raise ValueError(f"public key {_shorten(token)!r} decodes to {len(raw)} bytes, expected {KEY_BYTES}")
    if is_weak_public_key(raw):
        raise ValueError(f"public key {_shorten(token)!r} is a small-order point, which cannot be trusted")
    comment = parts[1].strip() if len(parts) > 1 else None
    return raw, comment or None


def verify(public_key: bytes, signature: bytes, data: bytes) -> bool:
    """True if ``signature`` is ``public_key``'s Ed25519 signature of ``data``.

    Never raises: any malformed input (wrong types, lengths, an invalid or small-order key)
    gives False.
    """
    try:
        if not isinstance(signature, (bytes, bytearray)) or len(signature) != SIGNATURE_BYTES:
            return False
        if not isinstance(data, (bytes, bytearray, memoryview)):
            return False
        key = _load_public_key(bytes(public_key))
        if key is None:
            return False
        key.verify(bytes(data), bytes(signature))
        return True
    except BadSignatureError:
        return False
    except Exception:  # noqa: BLE001 - documented: never raises on bad input
        return False


@functools.lru_cache(maxsize=1024)
def _load_public_key(raw: bytes) -> VerifyKey | None:
    # libsodium (PyNaCl) verifies in about half the time OpenSSL takes: every batch received pays it.
    if len(raw) != KEY_BYTES or is_weak_public_key(raw):
        return None
    try:
        return VerifyKey(raw)
    except Exception:  # noqa: BLE001
        return None


def _raw_key(value: object, what: str) -> bytes:
    if not isinstance(value, (bytes, bytearray)) or len(value) != KEY_BYTES:
        size = len(value) if isinstance(value, (bytes, bytearray)) else type(value).__name__
        raise ValueError(f"a raw {what} is {KEY_BYTES} bytes, got {size}")
    return bytes(value)


def _shorten(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


# -- identities ---------------------------------------------------------------------------------


class Identity:
    """This peer's Ed25519 key pair: signs frames, handshakes and delta batches.

    Create one with :meth:`generate` (first run), then :meth:`save` it and :meth:`load` it on
    every later start so the peer id — and so the replica id — stays the same.
    """

    __slots__ = ("_private", "_signer", "_public", "_peer_id")

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        if not isinstance(private_key, Ed25519PrivateKey):
            raise TypeError("Identity wraps a cryptography Ed25519PrivateKey")
        self._private = private_key
        # Signs with libsodium (faster than OpenSSL; Ed25519 signatures are deterministic, so identical).
        self._signer = SigningKey(
            private_key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                      serialization.NoEncryption())
        )
        self._public = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self._peer_id = peer_id_of(self._public)

    @classmethod
    def generate(cls) -> Identity:
        """A fresh random identity (the only place this module uses randomness)."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, raw: bytes) -> Identity:
        """The identity whose raw 32-byte Ed25519 private key is ``raw``.

        Raises:
            ValueError: ``raw`` is not 32 bytes.
        """
        return cls(Ed25519PrivateKey.from_private_bytes(_raw_key(raw, "private key")))

    def private_bytes(self) -> bytes:
        """The raw 32-byte private key. Keep it secret; prefer :meth:`save`."""
        return self._private.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte public key."""
        return self._public

    @property
    def peer_id(self) -> str:
        """Short printable fingerprint of the public key; also this replica's id."""
        return self._peer_id

    @property
    def public_key_text(self) -> str:
        """``ed25519:<base64>``: the line to add to other peers' keyrings."""
        return format_public_key(self._public)

    def sign(self, data: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``data``."""
        return self._signer.sign(bytes(data)).signature

    # -- text form ---------------------------------------------------------------------------------

    def dumps(self) -> str:
        """The private key file's text (see the module docstring). Secret."""
        secret = base64.b64encode(self.private_bytes()).decode("ascii")
        return (
            f"{PRIVATE_KEY_HEADER}\n{secret}\n"
            f"# public key: {self.public_key_text}\n# peer id: {self.peer_id}\n"
        )

    @classmethod
    def loads(cls, text: str) -> Identity:
        """Parse :meth:`dumps` output. Raises ValueError on anything else."""
        lines = [line.strip() for line in text.splitlines()]
        lines = [line for line in lines if line and not line.startswith("#")]
        if len(lines) != 2 or lines[0] != PRIVATE_KEY_HEADER:
            raise ValueError(f"not a crdtmem private key: expected a {PRIVATE_KEY_HEADER!r} line then one base64 line")
        try:
            raw = base64.b64decode(lines[1], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("private key line is not valid base64") from None
        if len(raw) != KEY_BYTES:
            raise ValueError(f"private key decodes to {len(raw)} bytes, expected {KEY_BYTES}")
        return cls.from_private_bytes(raw)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Identity) and other._public == self._public

    def __hash__(self) -> int:
        return hash(self._public)

    def __repr__(self) -> str:
        return f"Identity(peer_id={self.peer_id!r})"


# -- keyring ------------------------------------------------------------------------------------


class Keyring:
    """The public keys this peer trusts: only they may connect and author batches.

    Closed by default: an empty keyring trusts nobody. Give every peer its own key, and add
    each peer's :attr:`Identity.public_key_text` line to the others' keyrings. The keyring file
    is the founding list of members: admins (``+admin``) admit and revoke others at runtime
    (see :mod:`crdtmem.protocol.membership`).
    """

    def __init__(self) -> None:
        self._keys: dict[str, tuple[bytes, str | None]] = {}
        self._admins: set[str] = set()

    @classmethod
    def loads(cls, text: str, *, source: str = "<keyring>") -> Keyring:
        """Parse keyring text (see :meth:`load`)."""
        keyring = cls()
        for number, line in enumerate(text.splitlines(), start=1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            try:
                keyring.add(stripped)
            except ValueError as exc:
                raise ValueError(f"{source}: line {number}: {exc}") from None
        return keyring

    def add(self, key: Identity | bytes | str, comment: str | None = None, *, admin: bool = False) -> str:
        """Trust a key; returns its peer id. Adding a key twice is harmless.

        Args:
            key: an :class:`Identity`, a raw 32-byte public key, or a text line
                ``ed25519:<base64> [comment] [+admin]``.
            comment: a label kept next to the key in :meth:`dumps` (overrides one in the text).
            admin: the key may admit and revoke members (so does ``+admin`` ending the line).

        Raises:
            ValueError: the key is malformed.
        """
        if isinstance(key, Identity):
            raw = key.public_key
        elif isinstance(key, (bytes, bytearray)):
            raw = _raw_key(key, "public key")
            if is_weak_public_key(raw):
                raise ValueError("a small-order public key cannot be trusted")
        elif isinstance(key, str):
            raw, text_comment = _parse_public_key_line(key)
            if text_comment is not None and (text_comment == _ADMIN or text_comment.endswith(" " + _ADMIN)):
                admin, text_comment = True, text_comment[: -len(_ADMIN)].strip() or None
            comment = comment or text_comment
        else:
            raise TypeError(f"cannot trust a {type(key).__name__}: pass an Identity, 32 bytes or a key line")
        peer_id = peer_id_of(raw)
        existing = self._keys.get(peer_id)
        if existing is not None and existing[0] != raw:  # an 80-bit fingerprint collision
            raise ValueError(f"two different keys share peer id {peer_id}")
        self._keys[peer_id] = (raw, comment or (existing[1] if existing else None))
        if admin:
            self._admins.add(peer_id)
        return peer_id

    def is_admin(self, peer_id: str) -> bool:
        """Whether the keyring marks ``peer_id`` as an admin (``+admin``)."""
        return peer_id in self._admins

    def comment(self, peer_id: str) -> str | None:
        """The label kept next to ``peer_id``'s key, if any."""
        entry = self._keys.get(peer_id)
        return entry[1] if entry else None

    def remove(self, key: str | bytes) -> None:
        """Stop trusting a peer (by peer id or raw public key). Raises KeyError if absent."""
        peer_id = key if isinstance(key, str) else peer_id_of(key)
        del self._keys[peer_id]
        self._admins.discard(peer_id)

    def public_key(self, peer_id: str) -> bytes | None:
        """The trusted public key with this peer id, or None."""
        entry = self._keys.get(peer_id)
        return entry[0] if entry else None

    @property
    def peer_ids(self) -> list[str]:
        """Trusted peer ids, in the order they were added."""
        return list(self._keys)

    def __contains__(self, item: object) -> bool:
        if isinstance(item, str):
            return item in self._keys
        if isinstance(item, (bytes, bytearray)) and len(item) == KEY_BYTES:
            entry = self._keys.get(peer_id_of(bytes(item)))
            return entry is not None and entry[0] == item
        return False

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._keys))

    def dumps(self) -> str:
        """The keyring file's text: a header comment then one key line per peer."""
        lines = ["# crdtmem keyring: one trusted Ed25519 public key per line"]
        lines += [format_public_key(raw, comment) + (" " + _ADMIN if peer_id in self._admins else "")
                  for peer_id, (raw, comment) in self._keys.items()]
        return "\n".join(lines) + "\n"

    def __repr__(self) -> str:
        return f"Keyring({self.peer_ids!r})"
