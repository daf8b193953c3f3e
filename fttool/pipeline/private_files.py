"""Files only the operator can write: the seals in the stage cache that say what a resume may trust."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

READ_ONLY = stat.S_IRUSR


class NotPrivate(Exception):
    """A seal file, or its directory, that someone other than the operator could have written."""


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


def read_private_json(path: Path) -> Any:
    """The JSON in `path`, or None when there is no such file; NotPrivate when it or its directory is not only the
    operator's to write (owner, mode or a link); OSError or ValueError when it cannot be read as JSON."""
    if not path.exists() and not path.is_symlink():
        return None
    if not (only_yours(path) and only_yours(path.parent)):
        raise NotPrivate(path)
    return json.loads(path.read_text(encoding="utf-8"))
