"""Files only the operator can write: the seals in the stage cache that say what a resume may trust."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

READ_ONLY = stat.S_IRUSR


def write_private_json(path: Path, content: dict) -> None:
    """Write `content` to `path` atomically, read-only and readable by the operator alone, in a directory only they
    can write (mode 0700)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as handle:
        json.dump(content, handle, indent=2)
    tmp.chmod(READ_ONLY)  # as the cache's copies are; replacing it needs only the directory, which is the operator's
    tmp.replace(path)


def only_yours(path: Path) -> bool:
    """Whether only this user could have written `path`: owned by them, writable by no one else."""
    info = path.lstat()
    return (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)) and info.st_uid == os.getuid() \
        and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
