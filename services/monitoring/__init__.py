"""Observability: Prometheus metrics, stream lag and freshness."""
