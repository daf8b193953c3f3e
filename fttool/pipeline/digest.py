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
    """A file's sha256; for a directory, sha256_listing of every file below it."""
    if path.is_file():
        return sha256_file(path)
    return sha256_listing(path, files_under(path))


def sha256_listing(root: Path, files: list[Path]) -> str:
    """The sha256 of the (path relative to `root`, file sha256) list of `files`, in the order given."""
    listing = "".join(f"{p.relative_to(root).as_posix()}\0{sha256_file(p)}\n" for p in files)
    return hashlib.sha256(listing.encode("utf-8")).hexdigest()

