"""Key files on disk: a peer's private key and the keyring of trusted public keys.

The text formats are :meth:`Identity.dumps` and :meth:`Keyring.dumps` (see
:mod:`crdtmem.identity`); this module only reads and writes them. Call
:func:`load_or_create_identity` at the start of an agent, :func:`load_keyring` for its
``--trust`` file.
"""

from __future__ import annotations

import os
import stat
import tempfile
import warnings
from pathlib import Path

from ..identity import Identity, Keyring

__all__ = [
    "InsecureKeyFileWarning",
    "load_identity",
    "save_identity",
    "load_or_create_identity",
    "load_keyring",
    "save_keyring",
]

_MAX_KEY_FILE = 64 * 1024


class InsecureKeyFileWarning(UserWarning):
    """A private key file can be read by users other than its owner."""


def save_identity(identity: Identity, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
    """Write the private key file atomically with mode 0600.

    The file is written to a private temporary file in the same directory, flushed to disk,
    then moved into place, so a crash never leaves a half-written key.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False (an identity is never
            replaced by accident: its peer id names every write it made).
    """
    _atomic_write(Path(path), identity.dumps(), mode=0o600, overwrite=overwrite)


def load_identity(path: str | os.PathLike[str]) -> Identity:
    """Read a key file written by :func:`save_identity` (or ``crdtmem keygen``).

    Warns with :class:`InsecureKeyFileWarning` if the file is readable or writable by group
    or others (POSIX only).

    Raises:
        ValueError: the file is not a crdtmem private key (names the path).
        OSError: the file cannot be read.
    """
    path = Path(path)
    with open(path, encoding="ascii", errors="replace") as f:
        if os.name == "posix":
            mode = stat.S_IMODE(os.fstat(f.fileno()).st_mode)
            if mode & 0o077:
                warnings.warn(
                    f"private key file {str(path)!r} has mode {mode:04o} and can be read by other "
                    f"users; restrict it with: chmod 600 {str(path)!r}",
                    InsecureKeyFileWarning,
                    stacklevel=2,
                )
        text = f.read(_MAX_KEY_FILE)
    try:
        return Identity.loads(text)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def load_or_create_identity(path: str | os.PathLike[str]) -> Identity:
    """The identity in ``path``; a new one is generated and saved there if the file is absent."""
    try:
        return load_identity(path)
    except FileNotFoundError:
        identity = Identity.generate()
        try:
            save_identity(identity, path)
        except FileExistsError:  # another process created it first: use theirs
            return load_identity(path)
        return identity


def load_keyring(path: str | os.PathLike[str]) -> Keyring:
    """Read a keyring file: one ``ed25519:<base64> [comment]`` per line.

    Raises:
        ValueError: a line is neither a key, a ``#`` comment nor blank; the message names the
            file and line number.
        OSError: the file cannot be read.
    """
    with open(path, encoding="utf-8") as f:
        return Keyring.loads(f.read(), source=str(path))


def save_keyring(keyring: Keyring, path: str | os.PathLike[str]) -> None:
    """Write :meth:`Keyring.dumps` to ``path`` atomically (replacing it)."""
    _atomic_write(Path(path), keyring.dumps(), mode=0o644, overwrite=True)


def _atomic_write(path: Path, text: str, *, mode: int, overwrite: bool) -> None:
    """Write ``text`` to a temporary file beside ``path`` with ``mode``, fsync, then move it."""
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)  # created 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), mode)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # atomic, and fails if path exists
            except FileExistsError:
                raise FileExistsError(f"{path} already exists; refusing to overwrite it") from None
            except OSError:  # a filesystem without hard links
                if path.exists():
                    raise FileExistsError(f"{path} already exists; refusing to overwrite it") from None
                os.replace(tmp, path)
        _fsync_directory(directory)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _fsync_directory(directory: Path) -> None:
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
