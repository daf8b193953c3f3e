"""Content digests of files and directories, used for fingerprints, caching, lineage and verify."""
from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def files_under(path: Path) -> list[Path]:
    """The file itself, or every file below a directory, in a stable order."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file())


def sha256_path(path: Path) -> str:
    """A file's sha256; for a directory, the sha256 of its sorted (relative path, file sha256) list."""
    if path.is_file():
        return sha256_file(path)
    listing = "".join(f"{p.relative_to(path).as_posix()}\0{sha256_file(p)}\n" for p in files_under(path))
    return hashlib.sha256(listing.encode("utf-8")).hexdigest()

