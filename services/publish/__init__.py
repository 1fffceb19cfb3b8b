"""Publishing asset events to Kafka (used by `xmodal publish` and the gateway's POST /v1/assets)."""

from services.publish.producer import EventPublisher, Published

__all__ = ["EventPublisher", "Published"]
