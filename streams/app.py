"""The Faust application and its topics, built from WorkerSettings."""

from __future__ import annotations

from typing import Any

import faust

from services.config import WorkerSettings


def create_app(settings: WorkerSettings) -> faust.App:
    s = settings
    return faust.App(
        s.kafka.group_id,
        broker=[f"kafka://{hp.strip()}" for hp in s.kafka.bootstrap_servers.split(",")],
        key_serializer="raw",
        value_serializer="raw",  # the pipeline validates; a bad value must become a dead letter, not a crash
        datadir=str(s.data_dir),
        web_enabled=False,  # the worker serves /metrics, /livez and /readyz itself (streams/web.py)
        stream_buffer_maxsize=s.buffer_max_events,
        broker_commit_interval=s.commit_interval_s,
        broker_session_timeout=s.session_timeout_s,
        broker_heartbeat_interval=s.heartbeat_interval_s,
        consumer_group_instance_id=s.group_instance_id,
        consumer_auto_offset_reset="earliest",
        topic_allow_declare=False,  # topics are created on purpose (xmodal stack up / ops), never by accident
        topic_disable_leader=True,
        stream_ack_exceptions=False,
        stream_ack_cancelled_tasks=False,
        stream_wait_empty=False,
        producer_acks=-1,
    )


def assets_topic(app: faust.App, settings: WorkerSettings) -> Any:
    return app.topic(settings.kafka.topic, key_type=bytes, value_type=bytes,
                     partitions=settings.kafka.partitions)


def dlq_topic(app: faust.App, settings: WorkerSettings) -> Any:
    return app.topic(settings.kafka.dlq_topic, key_type=bytes, value_type=bytes,
                     partitions=settings.kafka.partitions)
