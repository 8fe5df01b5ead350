"""The exceptions zramd's layers raise, each carrying the errno the kernel's zram would give.

Owns: the error vocabulary. The device and attribute layers raise these; only the FUSE front end
turns `ZramError.errno` into a reply to the kernel, and only the CLI turns `UserError` into an exit
status. Must not: import anything outside the standard library.
"""

from __future__ import annotations

import errno as _errno


class ZramError(Exception):
    """Base class: an operation refused or failed, with the kernel's errno for it."""

    errno: int = _errno.EIO


class InvalidArgument(ZramError):
    """Bad input to an attribute or a request (EINVAL)."""

    errno = _errno.EINVAL


class DeviceBusy(ZramError):
    """A setup attribute written after initialisation, or reset while the disk is open (EBUSY)."""

    errno = _errno.EBUSY


class OutOfRange(ZramError):
    """A number too large for the attribute's type, e.g. reset > 65535 (ERANGE)."""

    errno = _errno.ERANGE


class ArgumentTooLong(ZramError):
    """An algorithm name of 128 characters or more (E2BIG)."""

    errno = _errno.E2BIG


class NotBlockDevice(ZramError):
    """A ``backing_dev`` that is neither a block device nor a regular file (ENOTBLK)."""

    errno = _errno.ENOTBLK


class NoDevice(ZramError):
    """``writeback`` on a device without a backing device (ENODEV)."""

    errno = _errno.ENODEV


class NoSpace(ZramError):
    """I/O that starts at or beyond the end of the disk (ENOSPC)."""

    errno = _errno.ENOSPC


class NoMemory(ZramError):
    """The pool could not be set up or grown (ENOMEM)."""

    errno = _errno.ENOMEM


class IOFailure(ZramError):
    """A page could not be stored or restored: mem_limit, a full pool, a codec error (EIO)."""

    errno = _errno.EIO


class TryAgain(ZramError):
    """recompress while a writeback runs, or the other way round (EAGAIN)."""

    errno = _errno.EAGAIN


class UserError(Exception):
    """A mistake on the command line or in a config file: printed as one line, no traceback.

    Attributes:
        exit_code: the process exit status (2 for usage errors, 1 otherwise).
    """

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
