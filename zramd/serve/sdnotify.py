"""sd_notify: tell systemd (Type=notify) that the daemon is ready or stopping.

Owns: the notification datagram protocol (``$NOTIFY_SOCKET``, abstract sockets with ``@``).
Must not: depend on libsystemd; when there is no NOTIFY_SOCKET every call is a no-op.
"""

from __future__ import annotations

import os
import socket


def notify(message: str) -> bool:
    """Send `message` (e.g. ``"READY=1\\nSTATUS=serving"``) to systemd; True if it was sent."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.connect(address)
        sock.sendall(message.encode())
    return True
