"""Reading kernel files under injected roots. Kept apart from the parsers so those stay pure."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from perfpulse.procfs import ParseError

T = TypeVar("T")
_FLAGS = os.O_RDONLY | os.O_CLOEXEC
_CHUNK = 1 << 16

#: errnos that mean "this attribute has no value here" rather than a fault: a missing file, a link
#: without a speed (EINVAL), a PSI file disabled at boot (EOPNOTSUPP), a device gone mid-read (ENODEV).
ABSENT = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EINVAL, errno.EOPNOTSUPP, errno.ENODEV, errno.ENXIO})


def read(path: Path | str) -> bytes:
    """The whole file; raises OSError. os.open/os.read rather than open(): half the cost per small file,
    which matters at a few hundred kernel files per second."""
    fd = os.open(path, _FLAGS)
    try:
        data = os.read(fd, _CHUNK)
        if not data:
            return data
        chunks = [data]
        while chunk := os.read(fd, _CHUNK):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_optional(path: Path | str) -> bytes | None:
    """The whole file, or None where the kernel says it has no value (see :data:`ABSENT`)."""
    try:
        return read(path)
    except OSError as exc:
        if exc.errno in ABSENT:
            return None
        raise


def read_attr(path: Path | str, parse: Callable[[bytes], T]) -> T | None:
    """One sysfs attribute parsed, or None when it is absent, unreadable or malformed: optional details
    (a link speed, a sensor label) never fail a whole collection."""
    try:
        fd = os.open(path, _FLAGS)
    except OSError:
        return None
    try:
        # One read: a sysfs attribute is at most one page (Documentation/filesystems/sysfs.rst).
        return parse(os.read(fd, _CHUNK))
    except (OSError, ParseError):
        return None
    finally:
        os.close(fd)


def tree_id(path: Path | str) -> tuple[str, int, int] | None:
    """Identity of the directory a root points at, symbolic links followed: caches keyed on it notice when a
    root is re-pointed at another tree (fixture replays swap a symlink), at the cost of one stat()."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (str(path), st.st_dev, st.st_ino)


def why(exc: OSError | ValueError) -> str:
    """A short reason for a failed read: the errno text for OSError (the path is already in the message
    the caller builds), the parser's own sentence otherwise."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)
