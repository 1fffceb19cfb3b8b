"""Session fixtures: the real local Kafka and Weaviate.

They start the stack when it is not running (and stop it again at the end), reuse it when it is, and FAIL
the tests that need them when a service cannot start: a missing service is a failure, never a skip.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from services.config import StackSettings
from services.localstack import LocalStack


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    st = LocalStack(StackSettings())
    was_up = st.healthy()
    if not was_up:
        st.up()  # raises StackError with the service's log tail: the test errors, it never skips
    assert st.healthy(), "\n".join(s.line() for s in st.status())
    yield st
    if not was_up:
        st.down()


@pytest.fixture(scope="session")
def kafka_bootstrap(stack: LocalStack) -> str:
    return stack.s.kafka.bootstrap_servers


@pytest.fixture
def unique_name() -> str:
    """A name no other test (or earlier run) uses: tests share one broker and one Weaviate."""
    return f"t{uuid.uuid4().hex[:12]}"
