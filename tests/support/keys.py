"""SSH keys for sign-off tests: a fresh ed25519 key pair and an allowed signers file listing it."""
from __future__ import annotations

from pathlib import Path


def keygen(path: Path) -> Path:
    """An unencrypted OpenSSH ed25519 private key at `path`, its public key at path.pub; returns `path`."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                       serialization.NoEncryption()))
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    path.with_suffix(".pub").write_bytes(public + b"\n")
    return path


def allowed_signers(path: Path, principal: str, key: Path) -> Path:
    """git's allowed_signers file at `path`, listing the public key of `key` for `principal`; returns `path`."""
    path.write_text(f"{principal} {key.with_suffix('.pub').read_text()}")
    return path
