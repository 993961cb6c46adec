"""The history tests share a real PostgreSQL cluster (see pg_cluster); its fixtures are registered here."""

from pg_cluster import pg_cluster, pg_dsn

__all__ = ["pg_cluster", "pg_dsn"]
