"""Listening sockets, shared by the HTTP and gRPC servers and the worker supervisor."""

from __future__ import annotations

import socket

BACKLOG = 2048
"""Connections the kernel completes and queues on a listening socket before it is accepted."""


def bind_socket(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket; with ``reuse_port`` several processes may share the port."""
    sock = bound_socket(host, port, reuse_port)
    listen(sock)
    return sock


def bound_socket(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    """A TCP socket bound to ``host``:``port``, not listening yet: it holds the port (one in
    use fails here), but the kernel sends it no connection until ``listen``.

    With ``reuse_port``, the kernel spreads a shared port's new connections over the sockets
    that listen on it, and only those: a worker that listened while it loaded its models had
    its share of every new connection queue on it, unanswered, for the whole load (17 s), while
    its siblings were idle. A server binds early and listens once it can answer.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def listen(sock: socket.socket) -> None:
    """Have the kernel take connections on ``sock`` (bound) from now on."""
    sock.listen(BACKLOG)
