"""OpenSSH signatures (the SSHSIG format of `ssh-keygen -Y sign`) with ed25519 keys, through `cryptography`.

A sign-off is signed with the same kind of key git uses to sign commits (`ssh-keygen -t ed25519`), and the
signature is the armored text `ssh-keygen -Y sign -n fttool-signoff` writes, so that
`ssh-keygen -Y verify -n fttool-signoff -f allowed_signers -I PRINCIPAL -s SIG < MESSAGE` checks it too.
Allowed signers are read in git's format (`gpg.ssh.allowedSignersFile`): `principals [options] key-type base64-key`.
As `ssh-keygen -Y verify` does, a key is not allowed for another namespace (`namespaces`), outside its validity
at the time of verification (`valid-after`, `valid-before`), or when it is a `cert-authority`: that key signs
certificates, which fttool does not read, not sign-offs.
Format: https://github.com/openssh/openssh-portable/blob/master/PROTOCOL.sshsig
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import struct
from dataclasses import dataclass
from pathlib import Path

NAMESPACE = "fttool-signoff"
MAGIC = b"SSHSIG"
HASH = "sha512"
KEY_TYPE = "ssh-ed25519"
BEGIN, END = "-----BEGIN SSH SIGNATURE-----", "-----END SSH SIGNATURE-----"


class SignatureError(Exception):
    """A key or signature cannot be used; the message says which and what to do (and `line`, of a file, where)."""

    def __init__(self, message: str, line: int = 0):
        super().__init__(message)
        self.line = line


@dataclass(frozen=True)
class AllowedSigner:
    principals: str
    public_key: str  # "ssh-ed25519 AAAA..."
    line: int


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _read_string(blob: bytes, offset: int) -> tuple[bytes, int]:
    if offset + 4 > len(blob):
        raise SignatureError("the signature is truncated")
    (length,) = struct.unpack(">I", blob[offset:offset + 4])
    end = offset + 4 + length
    if end > len(blob):
        raise SignatureError("the signature is truncated")
    return blob[offset + 4:end], end


def _signed_data(message: bytes) -> bytes:
    return (MAGIC + _string(NAMESPACE.encode()) + _string(b"") + _string(HASH.encode())
            + _string(hashlib.sha512(message).digest()))


def _key_blob(raw_public: bytes) -> bytes:
    return _string(KEY_TYPE.encode()) + _string(raw_public)


def sign(message: bytes, key_file: Path) -> tuple[str, str]:
    """(armored signature, public key as "ssh-ed25519 BASE64") of `message` with the OpenSSH key in `key_file`."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_ssh_private_key(Path(key_file).read_bytes(), password=None)
    except OSError as exc:
        raise SignatureError(f"{key_file}: cannot read the key ({exc.strerror})") from None
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"{key_file}: not an unencrypted OpenSSH private key ({exc}); make one with "
                             "ssh-keygen -t ed25519, or sign with a copy without a passphrase") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"{key_file}: an ed25519 key is needed (ssh-keygen -t ed25519)")
    raw_public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    signature = _string(KEY_TYPE.encode()) + _string(key.sign(_signed_data(message)))
    blob = (MAGIC + struct.pack(">I", 1) + _string(_key_blob(raw_public)) + _string(NAMESPACE.encode())
            + _string(b"") + _string(HASH.encode()) + _string(signature))
    text = base64.b64encode(blob).decode()
    body = "\n".join(text[i:i + 70] for i in range(0, len(text), 70))
    return f"{BEGIN}\n{body}\n{END}\n", _public_key_text(raw_public)


def _parse(armored: str) -> tuple[bytes, bytes]:
    """(raw ed25519 public key, raw signature) of an armored SSHSIG for fttool's namespace."""
    text = armored.strip()
    if not (text.startswith(BEGIN) and text.endswith(END)):
        raise SignatureError("not an armored SSH signature")
    try:
        blob = base64.b64decode("".join(text[len(BEGIN):-len(END)].split()), validate=True)
    except ValueError:
        raise SignatureError("the signature is not valid base64") from None
    if blob[:6] != MAGIC or blob[6:10] != struct.pack(">I", 1):
        raise SignatureError("not an SSHSIG version 1 signature")
    key_blob, offset = _read_string(blob, 10)
    namespace, offset = _read_string(blob, offset)
    _reserved, offset = _read_string(blob, offset)
    hash_name, offset = _read_string(blob, offset)
    signature, _ = _read_string(blob, offset)
    if namespace != NAMESPACE.encode() or hash_name != HASH.encode():
        raise SignatureError(f"signed for namespace {namespace.decode(errors='replace')!r} with "
                             f"{hash_name.decode(errors='replace')}, not {NAMESPACE!r} with {HASH}")
    key_type, rest = _read_string(key_blob, 0)
    raw_public, _ = _read_string(key_blob, rest)
    sig_type, rest = _read_string(signature, 0)
    raw_signature, _ = _read_string(signature, rest)
    if key_type != KEY_TYPE.encode() or sig_type != KEY_TYPE.encode():
        raise SignatureError("only ed25519 signatures are accepted")
    return raw_public, raw_signature


def verify(message: bytes, armored: str) -> str:
    """The public key ("ssh-ed25519 BASE64") that made `armored` over `message`; SignatureError if none did."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    raw_public, raw_signature = _parse(armored)
    try:
        Ed25519PublicKey.from_public_bytes(raw_public).verify(raw_signature, _signed_data(message))
    except (InvalidSignature, ValueError):
        raise SignatureError("the signature does not match what was signed: the sign-off or the run changed "
                             "after signing") from None
    return _public_key_text(raw_public)


def _public_key_text(raw_public: bytes) -> str:
    """As OpenSSH writes a public key (id_ed25519.pub, allowed_signers): type, then the base64 key blob."""
    return f"{KEY_TYPE} {base64.b64encode(_key_blob(raw_public)).decode()}"


def _validity_time(text: str, where: str) -> dt.datetime:
    """A valid-after or valid-before time as OpenSSH writes it: YYYYMMDD[HHMM[SS]], in UTC with a trailing Z."""
    utc = text.endswith(("Z", "z"))
    digits = text[:-1] if utc else text
    try:
        when = dt.datetime.strptime(digits, {8: "%Y%m%d", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}[len(digits)])
    except (KeyError, ValueError):
        raise SignatureError(f"{where}: '{text}' is not a time as YYYYMMDD[HHMM[SS]][Z]") from None
    return when.replace(tzinfo=dt.timezone.utc) if utc else when.astimezone()


def _allowed_now(options: dict[str, str], where: str) -> bool:
    """Whether a line's key may verify sign-offs now, by its options."""
    if "cert-authority" in options:
        return False  # the key signs certificates, not sign-offs
    if "namespaces" in options and NAMESPACE not in options["namespaces"].split(","):
        return False  # the key may sign other things (e.g. git commits), not sign-offs
    now = dt.datetime.now(dt.timezone.utc)
    if options.get("valid-after") and now < _validity_time(options["valid-after"], where):
        return False
    return not (options.get("valid-before") and now > _validity_time(options["valid-before"], where))


def fingerprint(public_key: str) -> str:
    """The key's fingerprint as `ssh-keygen -l` prints it (SHA256:base64), for "ssh-ed25519 BASE64"."""
    blob = base64.b64decode(public_key.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def read_allowed_signers(path: Path) -> list[AllowedSigner]:
    """The ed25519 keys of an allowed_signers file (git's format); SignatureError for a line it cannot read."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SignatureError(f"{path}: cannot read the allowed signers file ({exc})") from None
    signers = []
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        key_at = next((i for i, field in enumerate(fields) if i and field.startswith(("ssh-", "ecdsa-", "sk-"))), None)
        if key_at is None or key_at + 1 >= len(fields):
            raise SignatureError(f"{path}:{number}: not 'principals [options] key-type base64-key'", number)
        options = dict(re.findall(r'([\w-]+)(?:="([^"]*)")?', ",".join(fields[1:key_at])))
        try:
            if not _allowed_now(options, f"{path}:{number}"):
                continue
        except SignatureError as exc:
            raise SignatureError(str(exc), number) from None
        if fields[key_at] == KEY_TYPE:
            signers.append(AllowedSigner(fields[0], f"{KEY_TYPE} {fields[key_at + 1]}", number))
    return signers
