"""Test-side names for services.localstack.lanes (shared with bench/)."""

from services.localstack.lanes import Lane, WorkerProcess, free_port, read_dead_letters, wait_stored

__all__ = ["Lane", "WorkerProcess", "free_port", "read_dead_letters", "wait_stored"]
