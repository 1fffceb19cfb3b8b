"""`xmodal stack`: install, start, stop or inspect the local Kafka + Weaviate."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cli.command import Subparsers


def add_parser(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "stack", help="install, start, stop or inspect the local Kafka + Weaviate",
        description="The local stack: Apache Kafka (KRaft) and Weaviate on 127.0.0.1, installed into "
        "~/.cache/xmodal (XMODAL_CACHE_DIR); data, logs and pid files go to "
        "~/.local/state/xmodal/stack (XMODAL_STATE_DIR). One node of each by default; --nodes 3 (or "
        "XMODAL_NODES=3) starts a local cluster: 3 Kafka brokers (KRaft controllers too; topics with "
        "replication factor 3, min.insync.replicas 2) and 3 Weaviate nodes (Raft; collections replicated 3 "
        "times). Node i listens on every base port + 10*(i-1): Kafka 9092/9102/9112 "
        "(controllers 9093/9103/9113), Weaviate HTTP 8080/8090/8100, gRPC 50051/50061/50071, gossip "
        "7946/7956/7966, data 7947/7957/7967, Raft 8300/8310/8320 (RPC +1); its data, log and pid file "
        "are in state_dir/kafka-i and state_dir/weaviate-i. `up` prints the settings the worker and "
        "gateway need for the cluster; `down` stops every node of either layout.",
    )
    p.add_argument("action", choices=["install", "up", "down", "status"],
                   help="install: fetch the Kafka jars and build weaviate-server (cached); up: start or "
                   "restart what is down; down: stop, leaving no process; status: health (exit 1 when unhealthy)")
    p.add_argument("--nodes", type=int, default=None, metavar="N",
                   help="nodes of each engine: 1 (default, XMODAL_NODES) or 3 for a local cluster")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from services.config import StackSettings
    from services.localstack import LocalStack

    settings = StackSettings() if args.nodes is None else StackSettings(nodes=args.nodes)
    stack = LocalStack(settings)
    if args.action == "install":
        stack.install()
        print("Kafka jars, weaviate-server and toxiproxy-server are installed in", stack.s.cache_dir)
    elif args.action == "up":
        for st in stack.up():
            print(st.line())
        if env := stack.client_env():
            print("workers and gateways reach every node with:")
            for name, value in env.items():
                print(f"  export {name}={value}")
    elif args.action == "down":
        stopped = stack.down()
        print("stopped:", ", ".join(stopped) if stopped else "nothing was running")
    else:
        statuses = stack.status()
        for st in statuses:
            print(st.line())
        return 0 if all(s.healthy for s in statuses) else 1
    return 0
