"""Identities, peer ids, key files and the keyring — with real Ed25519 keys."""

from __future__ import annotations

import os
import stat
import warnings

import pytest

from crdtmem.identity import (
    Identity,
    Keyring,
    format_public_key,
    is_weak_public_key,
    parse_public_key,
    peer_id_of,
    verify,
)
from crdtmem.storage.keyfiles import (
    InsecureKeyFileWarning,
    load_identity,
    load_keyring,
    save_identity,
    save_keyring,
)

posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")

RAW = bytes(range(32))


def test_peer_id_is_stable_short_and_printable():
    identity = Identity.from_private_bytes(RAW)
    assert identity.peer_id == Identity.from_private_bytes(RAW).peer_id
    assert identity.peer_id == peer_id_of(identity.public_key)
    assert len(identity.peer_id) == 16
    assert identity.peer_id.isascii() and identity.peer_id.isalnum() and identity.peer_id.islower()
    assert Identity.generate().peer_id != identity.peer_id


def test_peer_id_derivation_is_pinned():
    # Changing the derivation would change every replica id already written to disk.
    assert Identity.from_private_bytes(RAW).peer_id == "6po3azezrlz7a3ej"
    assert peer_id_of(bytes(32)) == "vktvbhirbwj44o5v"


def test_signature_verifies_only_for_the_same_key_and_data():
    alice, bob = Identity.generate(), Identity.generate()
    signature = alice.sign(b"hello")
    assert len(signature) == 64
    assert verify(alice.public_key, signature, b"hello")
    assert not verify(alice.public_key, signature, b"hellO")
    assert not verify(bob.public_key, signature, b"hello")


def test_signatures_are_the_deterministic_ed25519_ones_so_stored_batches_still_verify():
    # Signing and verifying go through libsodium; a signature made by OpenSSL for the same key
    # and data (batches journaled before the switch) is byte-identical and verifies.
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    openssl_key = Ed25519PrivateKey.from_private_bytes(RAW)
    identity = Identity.from_private_bytes(RAW)
    for data in (b"", b"hello", bytes(range(256)) * 40):
        assert identity.sign(data) == openssl_key.sign(data)
        assert verify(identity.public_key, openssl_key.sign(data), data)
    tampered = bytearray(identity.sign(b"hello"))
    tampered[10] ^= 1
    assert not verify(identity.public_key, bytes(tampered), b"hello")


@pytest.mark.parametrize(
    "key, signature, data",
    [
        (b"short", b"\x00" * 64, b"x"),
        (None, b"\x00" * 64, b"x"),
        (bytes(32), b"\x00" * 63, b"x"),
        (bytes(32), None, b"x"),
        (bytes(32), b"\x00" * 64, "not bytes"),
        (bytes(32), b"\x00" * 64, b"x"),
    ],
)
def test_verify_returns_false_on_garbage_instead_of_raising(key, signature, data):
    assert verify(key, signature, data) is False


def test_small_order_keys_never_verify_and_are_never_trusted():
    # The all-zero key with an all-zero signature "verifies" in OpenSSL: refuse such keys.
    weak = bytes(32)
    assert is_weak_public_key(weak)
    assert is_weak_public_key(b"\x01" + bytes(31))
    assert is_weak_public_key(bytes(31) + b"\x80")  # sign bit set, same point
    assert not is_weak_public_key(Identity.generate().public_key)
    assert not any(verify(weak, bytes(64), bytes([i])) for i in range(16))
    with pytest.raises(ValueError, match="small-order"):
        Keyring().add(weak)
    with pytest.raises(ValueError, match="small-order"):
        parse_public_key(format_public_key(weak))


def test_private_key_must_be_32_bytes():
    with pytest.raises(ValueError, match="32 bytes"):
        Identity.from_private_bytes(b"\x00" * 31)


def test_key_file_round_trip_keeps_the_identity(tmp_path):
    identity = Identity.generate()
    path = tmp_path / "peer.key"
    save_identity(identity, path)
    loaded = load_identity(path)
    assert loaded == identity
    assert loaded.peer_id == identity.peer_id
    assert loaded.private_bytes() == identity.private_bytes()
    assert verify(identity.public_key, loaded.sign(b"m"), b"m")
    text = path.read_text()
    assert text.startswith("crdtmem-ed25519-private-key-v1\n")
    assert identity.public_key_text in text  # the public half is a comment, for convenience


@posix_only
def test_saved_key_file_is_private(tmp_path):
    path = tmp_path / "peer.key"
    old = os.umask(0o000)  # even a permissive umask must not widen the mode
    try:
        save_identity(Identity.generate(), path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["peer.key"]  # no temporary file left behind


def test_save_refuses_to_replace_an_existing_identity(tmp_path):
    path = tmp_path / "peer.key"
    first = Identity.generate()
    save_identity(first, path)
    with pytest.raises(FileExistsError):
        save_identity(Identity.generate(), path)
    assert load_identity(path) == first
    second = Identity.generate()
    save_identity(second, path, overwrite=True)
    assert load_identity(path) == second
    assert len(list(tmp_path.iterdir())) == 1


@posix_only
def test_loading_a_group_readable_key_file_warns(tmp_path):
    path = tmp_path / "peer.key"
    identity = Identity.generate()
    save_identity(identity, path)
    os.chmod(path, 0o644)
    with pytest.warns(InsecureKeyFileWarning, match="chmod 600"):
        assert load_identity(path) == identity


@posix_only
def test_loading_a_private_key_file_does_not_warn(tmp_path):
    path = tmp_path / "peer.key"
    save_identity(Identity.generate(), path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_identity(path)


@pytest.mark.parametrize(
    "text",
    ["", "ed25519:AAAA\n", "crdtmem-ed25519-private-key-v1\n!!!!\n", "crdtmem-ed25519-private-key-v1\nAAAA\n"],
)
def test_malformed_key_file_is_refused_naming_the_path(tmp_path, text):
    path = tmp_path / "bad.key"
    path.write_text(text)
    os.chmod(path, 0o600)
    with pytest.raises(ValueError, match="bad.key"):
        load_identity(path)


def test_public_key_text_round_trips_with_and_without_comment():
    identity = Identity.generate()
    assert identity.public_key_text.startswith("ed25519:")
    assert "\n" not in identity.public_key_text
    assert parse_public_key(identity.public_key_text) == identity.public_key
    line = format_public_key(identity.public_key, "alice on\nlaptop")
    assert line.endswith(" alice on laptop")
    assert parse_public_key(line) == identity.public_key


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty"),
        ("ssh-ed25519 AAAA", "does not start with"),
        ("ed25519:not*base64", "not valid base64"),
        ("ed25519:AAAA", "decodes to 3 bytes"),
    ],
)
def test_parse_public_key_explains_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        parse_public_key(text)


def test_keyring_is_closed_until_keys_are_added():
    keyring = Keyring()
    alice = Identity.generate()
    assert len(keyring) == 0
    assert alice.peer_id not in keyring and alice.public_key not in keyring
    assert keyring.public_key(alice.peer_id) is None


def test_keyring_accepts_identities_raw_keys_and_text():
    alice, bob, carol = Identity.generate(), Identity.generate(), Identity.generate()
    keyring = Keyring()
    assert keyring.add(alice) == alice.peer_id
    assert keyring.add(bob.public_key) == bob.peer_id
    assert keyring.add(carol.public_key_text + " carol") == carol.peer_id
    keyring.add(alice)  # idempotent
    assert len(keyring) == 3
    assert keyring.peer_ids == [alice.peer_id, bob.peer_id, carol.peer_id]
    for who in (alice, bob, carol):
        assert who.peer_id in keyring
        assert who.public_key in keyring
        assert keyring.public_key(who.peer_id) == who.public_key
    assert Identity.generate().public_key not in keyring
    assert 42 not in keyring
    keyring.remove(bob.peer_id)
    assert bob.peer_id not in keyring and len(keyring) == 2


def test_keyring_file_round_trip_with_comments(tmp_path):
    alice, bob = Identity.generate(), Identity.generate()
    path = tmp_path / "keyring"
    path.write_text(
        "# team keyring\n"
        "\n"
        f"{alice.public_key_text} alice@laptop\n"
        f"   {bob.public_key_text}   \n"
        "   # indented comment\n"
    )
    keyring = load_keyring(path)
    assert keyring.peer_ids == [alice.peer_id, bob.peer_id]
    assert "alice@laptop" in keyring.dumps()
    save_keyring(keyring, tmp_path / "copy")
    again = load_keyring(tmp_path / "copy")
    assert again.peer_ids == keyring.peer_ids
    assert again.dumps() == keyring.dumps()


def test_keyring_file_error_names_the_line(tmp_path):
    alice = Identity.generate()
    path = tmp_path / "keyring"
    path.write_text(f"# ok\n{alice.public_key_text}\n\nnot a key\n")
    with pytest.raises(ValueError, match=r"keyring: line 4: .*does not start with"):
        load_keyring(path)
