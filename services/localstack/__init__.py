"""The local stack: a real Apache Kafka (KRaft) and a real Weaviate, installed into a cache and run on 127.0.0.1.

No Docker: Kafka runs from the official jars (Maven Central) with java, Weaviate from a binary built with
``go install``. Used by ``make up/down/status``, the demo and the test fixtures.
"""

from services.localstack.stack import LocalStack, ServiceStatus

__all__ = ["LocalStack", "ServiceStatus"]
