"""In-process peers for tests: identities, keyrings, memories and a throwaway TLS certificate."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from crdtmem import Memory, codec
from crdtmem.identity import Identity, Keyring


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (dialing it fails at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def team(n: int) -> tuple[list[Identity], Keyring, list[Memory]]:
    """``n`` identities, a keyring trusting all of them, and one wall-clock Memory each."""
    identities = [Identity.generate() for _ in range(n)]
    keyring = Keyring()
    for identity in identities:
        keyring.add(identity)
    memories = [Memory(identity.peer_id, clock=time.time) for identity in identities]
    return identities, keyring, memories


def exchange(*replicas: Memory) -> None:
    """Every replica ships its pending deltas to every other one, through the codec."""
    outboxes = [(r, r.take_deltas()) for r in replicas]
    for source, deltas in outboxes:
        for name, delta in deltas:
            for target in replicas:
                if target is not source:
                    target.apply_delta(name, codec.decode_state(codec.encode_state(delta)), source.replica_id)


@contextmanager
def threaded_pair() -> Iterator[tuple]:
    """Two peers on background threads (``crdtmem.open_peer``), the second dialing the first."""
    import crdtmem
    from crdtmem.runtime import PeerOptions

    identities, keyring, _ = team(2)
    with crdtmem.open_peer(identities[0], keyring, listen="ws://127.0.0.1:0") as a:
        # A dialer that lost the race with its listener's start retries soon.
        with crdtmem.open_peer(identities[1], keyring, connect=[a.url], options=PeerOptions(reconnect_min=0.05)) as b:
            yield a, b


def same_state(*memories: Memory) -> bool:
    return len({m.snapshot() for m in memories}) == 1 and all(m.values() == memories[0].values() for m in memories)


def make_tls(directory: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for 127.0.0.1, generated with ``cryptography``.

    Returns (server context, client context trusting exactly that certificate).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "crdtmem test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                    x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_path, key_path)
    client = ssl.create_default_context(cafile=str(cert_path))
    return server, client
