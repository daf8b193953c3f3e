"""Content digests of files and directories, used for fingerprints, caching, lineage and verify."""
from __future__ import annotations

import hashlib
from functools import lru_cache
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


def package_digest(package: Path) -> str:
    """sha256 of a package directory's files, as sha256_path gives it, leaving out Python's bytecode caches (their
    bytes change with compile times, not with the code)."""
    listing = "".join(f"{p.relative_to(package).as_posix()}\0{sha256_file(p)}\n" for p in files_under(package)
                      if "__pycache__" not in p.relative_to(package).parts)
    return hashlib.sha256(listing.encode("utf-8")).hexdigest()


@lru_cache(maxsize=1)
def code_digest() -> str:
    """package_digest of fttool itself, its code and its data (the PII lexicons, the schema, the templates): a
    stage's output is served from the cache, or resumed, only for the code that wrote it, not on a version number
    someone had to remember to bump."""
    return package_digest(Path(__file__).resolve().parents[1])
