"""Which base model a run tunes, proven rather than taken from the recipe's word.

A light module (no torch, no transformers): the compiler builds `ModelParams` for every stage that
loads the base model (train, evaluate, memorisation), and those stages' parameter dataclasses embed it.
A hub id is resolved to a commit before any stage runs (from the local Hugging Face cache when offline),
and a declared licence is compared with the model's own card front matter and LICENSE file.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from fttool.training.model_ref import is_demo_reference, is_local_model


@dataclass(frozen=True)
class ModelParams:
    """The base model a run tunes and evaluates.

    Fields:
        base: a local directory (relative to the recipe file), a Hugging Face hub id, or "demo:tiny-llama" for
            the offline demo model fttool builds.
        revision: for a hub id, the commit that the recipe's revision (a branch, tag or commit; by default the
            default branch) resolved to before any stage ran, so every stage loads, fingerprints and reports the
            same weights; for a local directory or the demo model, the recipe's revision as given (None when unset).
        license: the SPDX id of the base model's licence as the recipe declares it; None when not declared.
        trust_remote_code: run code shipped with the model when loading it (off unless the recipe turns it on).
    """

    base: str
    revision: str | None
    license: str | None
    trust_remote_code: bool


class ModelIdentityError(ValueError):
    """The base model cannot be identified as the recipe names it; the message says what to do."""


COMMIT = re.compile(r"[0-9a-f]{40}")
CARD_FILE = "README.md"
LICENSE_FILES = ("LICENSE", "LICENSE.txt", "LICENSE.md")
# Opening words of licence texts that name their SPDX id (or the hub's licence id), checked in order.
LICENSE_TEXTS = (
    ("apache-2.0", re.compile(r"apache license\s+version 2\.0", re.I)),
    ("mit", re.compile(r"^\s*(the )?mit license", re.I)),
    ("llama3.3", re.compile(r"llama 3\.3 community license", re.I)),
    ("llama3.2", re.compile(r"llama 3\.2 community license", re.I)),
    ("llama3.1", re.compile(r"llama 3\.1 community license", re.I)),
    ("llama3", re.compile(r"meta llama 3 community license", re.I)),
    ("llama2", re.compile(r"llama 2 community license", re.I)),
    ("gemma", re.compile(r"gemma terms of use", re.I)),
    ("cc-by-nc-4.0", re.compile(r"attribution-noncommercial 4\.0 international", re.I)),
    ("cc-by-4.0", re.compile(r"attribution 4\.0 international", re.I)),
    ("bsd-3-clause", re.compile(r"redistribution and use in source and binary forms.*neither the name", re.I | re.S)),
)


def resolved_revision(base: str, revision: str | None) -> str | None:
    """The revision the stages load: for a hub id, the commit `revision` resolves to (ModelIdentityError when it
    cannot be); for a local directory or the demo model, `revision` as the recipe gives it."""
    if is_demo_reference(base) or is_local_model(base):
        return revision
    return resolve_hub_commit(base, revision)


def metadata_directory(base: str, revision: str | None, recipe_dir: Path) -> Path | None:
    """Where the model's card and LICENSE can be read without a download: a local directory, or the cached
    snapshot of a hub id at `revision`; None for the demo model or a hub model not in the cache."""
    if is_demo_reference(base):
        return None
    if is_local_model(base):
        return recipe_dir / Path(base).expanduser()
    return cached_snapshot(base, revision)


def resolve_hub_commit(repo_id: str, revision: str | None) -> str:
    """The commit a hub id and revision (a branch, tag or commit; None: the default branch) stand for.

    Online, the hub answers; offline (HF_HUB_OFFLINE=1) or when it cannot be reached, the local cache's refs
    do, so a model downloaded once is identified without a network.
    """
    from huggingface_hub import HfApi, constants

    reached = "HF_HUB_OFFLINE is set"
    if not constants.HF_HUB_OFFLINE:
        try:
            answer = HfApi().model_info(repo_id, revision=revision).sha
        except Exception as exc:  # noqa: BLE001 - whatever kept the hub from answering, the cache may still know
            answer, reached = None, f"the hub did not answer ({type(exc).__name__})"
        if answer:
            return answer
    commit = cached_commit(repo_id, revision)
    if commit is None:
        raise ModelIdentityError(f"'{repo_id}' at revision {revision or 'main'} cannot be resolved to a commit: "
                                 f"{reached} and the local Hugging Face cache does not hold it; download it once "
                                 "(huggingface-cli download) or pin model.revision to a cached commit")
    return commit


def cached_commit(repo_id: str, revision: str | None) -> str | None:
    """The commit of a cached snapshot for the revision (refs/<revision>, or a commit with a snapshot); None when
    the cache does not hold it."""
    snapshot = cached_snapshot(repo_id, revision)
    return snapshot.name if snapshot else None


def hub_cache_folder(repo_id: str) -> str:
    """The folder huggingface_hub keeps a model repository in, under its cache."""
    return f"models--{repo_id.replace('/', '--')}"


def cached_snapshot(repo_id: str, revision: str | None) -> Path | None:
    """The cache's snapshot directory of the revision, laid out as huggingface_hub writes it; None when absent."""
    from huggingface_hub import constants

    repo = Path(constants.HF_HUB_CACHE) / hub_cache_folder(repo_id)
    name = revision or "main"
    ref = repo / "refs" / name
    commit = ref.read_text(encoding="utf-8").strip() if ref.is_file() else name
    snapshot = repo / "snapshots" / commit
    return snapshot if COMMIT.fullmatch(commit) and snapshot.is_dir() else None


def base_model_inputs(model: ModelParams) -> list[str]:
    """The base model's files a run hashes into its lineage: a local directory (recipe-relative, as the recipe
    names it), or a hub id's snapshot in the local cache at the resolved commit (an absolute path). A hub model
    that is not cached yet is downloaded when it loads; the commit in the parameters then identifies it."""
    if is_demo_reference(model.base):
        return []
    if is_local_model(model.base):
        return [model.base]
    snapshot = cached_snapshot(model.base, model.revision)
    return [str(snapshot)] if snapshot else []


def card_license(directory: Path) -> str | None:
    """The `license:` of the model card's YAML front matter (README.md), as the hub shows it; None without one."""
    import yaml

    card = directory / CARD_FILE
    if not card.is_file():
        return None
    text = card.read_text(encoding="utf-8", errors="replace")
    match = re.match(r"---\s*\n(.*?)\n---\s*(\n|$)", text, re.S)
    if not match:
        return None
    try:
        front = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return None
    value = front.get("license") if isinstance(front, dict) else None
    return str(value) if value else None


def license_file_id(directory: Path) -> str | None:
    """The licence a LICENSE file's text names, by its opening words (LICENSE_TEXTS); None when absent or unknown."""
    for name in LICENSE_FILES:
        path = directory / name
        if path.is_file():
            head = path.read_text(encoding="utf-8", errors="replace")[:2000]
            return next((spdx for spdx, pattern in LICENSE_TEXTS if pattern.search(head)), None)
    return None


def license_conflicts(declared: str | None, directory: Path) -> list[str]:
    """Why the recipe's declared licence contradicts the model's own metadata (card front matter, LICENSE file),
    each naming both values; empty when they agree, or when the recipe or the model states none."""
    if not declared:
        return []
    found = {f"its model card ({CARD_FILE} front matter)": card_license(directory),
             "its LICENSE file": license_file_id(directory)}
    return [f"model.license is {declared}, but {where} says {value}"
            for where, value in found.items() if value and declared.casefold() != value.casefold()]

