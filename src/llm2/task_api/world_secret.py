"""The world secret: what makes a synthetic world's hidden part impossible to rebuild from public code and seeds.

A world's hidden parameters (a gold reward, a hidden process, held-out data, the scorer's sampling seeds) are drawn
from seeds that mix the world seed with this secret, ``derive_seed(secret, parts)`` (HMAC-SHA-256). The secret is
made at first use, 32 random bytes as hex, in ``<cache>/secret/world-secret`` (directory 0700, file 0600), or read
from the file ``LLM2_WORLD_SECRET`` names (``--world-secret FILE``: the same secret on several machines gives the
same worlds). It is read only by trusted processes (the CLI, the scorer, a task's ``prepare``); a run records its
``fingerprint``, a keyed hash from which the secret cannot be recovered, never the secret.

Processes that may run candidate code, or fork one, never read it: a warm worker finds its training files by the
fingerprint that a trusted ancestor published in its environment (``published_fingerprint``), so the secret's
bytes are never in its memory, and so never in a candidate's.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from llm2.task_api import cache

SECRET_ENV = "LLM2_WORLD_SECRET"  # a path: the file holding the secret (never the secret itself)
FINGERPRINT_ENV = "LLM2_WORLD_FINGERPRINT"  # published for the training side: names cache files, reveals nothing
MIN_BYTES = 16


class WorldSecretError(ValueError):
    """The secret's file cannot be used (unreadable, readable by others, too short): one line for the user."""


class NotPrepared(FileNotFoundError):
    """A process that must not read the secret was given no fingerprint: its trusted parent prepared nothing."""


@dataclass(frozen=True)
class _Loaded:
    path: Path
    secret: bytes
    fingerprint: str


_loaded: _Loaded | None = None  # trusted processes only: nothing of this exists in a worker


def default_path() -> Path:
    return cache.cache_dir() / "secret" / "world-secret"


def secret_path() -> Path:
    named = os.environ.get(SECRET_ENV)
    return Path(named).expanduser().resolve() if named else default_path()


def use_file(path: str | os.PathLike | None) -> str:
    """Use the secret in ``path`` (default: the cache's, made if missing) from now on, in this process and the
    trusted processes it starts; publish and return its fingerprint. WorldSecretError if it cannot be used."""
    if path is not None:
        os.environ[SECRET_ENV] = str(Path(path).expanduser().resolve())
    return fingerprint()


def fingerprint() -> str:
    """The fingerprint of the secret in use (trusted processes only: reads the secret, makes it at first use)."""
    return _load().fingerprint


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from the secret and ``parts`` (trusted processes only): unknowable without the secret."""
    message = "\x1f".join(str(part) for part in parts).encode()
    digest = hmac.new(_load().secret, message, hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def published_fingerprint() -> str:
    """The fingerprint a trusted ancestor published (any process; never reads the secret)."""
    published = os.environ.get(FINGERPRINT_ENV)
    if not published:
        raise NotPrepared("the world secret's fingerprint is unknown here: the task was not prepared by a trusted "
                          "process first")
    return published


def fingerprint_of(secret: bytes) -> str:
    return hmac.new(secret, b"llm2 world secret fingerprint", hashlib.sha256).hexdigest()[:16]


def _load() -> _Loaded:
    global _loaded
    path = secret_path()
    if _loaded is None or _loaded.path != path:
        if path == default_path() and not path.exists():
            _make(path)
        secret = _read(path)
        _loaded = _Loaded(path, secret, fingerprint_of(secret))
    os.environ[FINGERPRINT_ENV] = _loaded.fingerprint  # inherited by the workers this process starts
    return _loaded


def _make(path: Path) -> None:
    """Write a new secret, atomically: two processes making it at once end up with the same one."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_hex(32) + "\n")
        try:
            os.link(temporary, path)  # fails if another process made it first: then theirs is the secret
        except FileExistsError:
            pass
    finally:
        temporary.unlink(missing_ok=True)


def _read(path: Path) -> bytes:
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise WorldSecretError(f"cannot read the world secret {path}: {exc.strerror}") from None
    with os.fdopen(descriptor, "rb") as file:
        status = os.fstat(file.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise WorldSecretError(f"the world secret {path} is not a regular file")
        if status.st_mode & 0o077:
            raise WorldSecretError(f"the world secret {path} is readable by other users (mode "
                                   f"{stat.S_IMODE(status.st_mode):o}); make it private: chmod 600 {path}")
        secret = file.read(4096).strip()
    if len(secret) < MIN_BYTES:
        raise WorldSecretError(f"the world secret {path} is too short ({len(secret)} bytes; at least {MIN_BYTES})")
    return secret
