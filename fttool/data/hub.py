"""Hugging Face hub datasets as sources, pinned to a revision.

The revision the recipe names (a branch, tag or commit) is resolved to a commit by huggingface_hub, which
downloads the snapshot or, offline (HF_HUB_OFFLINE=1), finds it in the local hub cache. The snapshot
directory is what the lineage hashes, exactly like a local file, and `datasets` reads the split from it.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fttool.data.containers import UnreadableRest, json_compatible
from fttool.pipeline.errors import RunError


class HubSourceError(RunError):
    """A hub source that cannot be resolved or read; the message says which and what to do."""


def snapshot_dir(repo_id: str, revision: str) -> Path:
    """The local snapshot of the dataset at `revision`; its directory name is the resolved commit."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RevisionNotFoundError

    try:
        return Path(snapshot_download(repo_id, repo_type="dataset", revision=revision))
    except (LocalEntryNotFoundError, RevisionNotFoundError, HfHubHTTPError, OSError) as exc:
        raise HubSourceError(f"hub dataset {repo_id} at revision {revision} is neither in the hub cache nor "
                             f"downloadable ({type(exc).__name__}); check the id and revision, or download it "
                             "once with network access") from None


def resolved_commit(snapshot: Path) -> str:
    return snapshot.name


def read_hub_split(snapshot: Path, split: str) -> Iterator[tuple[int, Any]]:
    """(row number, row) of the split, read by `datasets` from the snapshot directory."""
    import datasets

    try:
        rows = datasets.load_dataset(str(snapshot), split=split, streaming=True)
    except (ValueError, FileNotFoundError) as exc:
        raise UnreadableRest(1, f"split '{split}' cannot be read from the snapshot ({type(exc).__name__})") from None
    for number, row in enumerate(rows, start=1):
        yield number, json_compatible(row)
