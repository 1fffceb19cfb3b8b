"""xmodal services: the ingest pipeline, embedding, fetching, storage, gateway, monitoring, publishing and the
local stack.

Dependencies point inward: services import schemas, never streams or the CLI (cli/).
"""
