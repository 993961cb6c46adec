"""The server tests share their harness through server_support; its fixtures are registered here."""

from server_support import server, server_factory

__all__ = ["server", "server_factory"]
