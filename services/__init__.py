"""xmodal services: embedding, fetching, storage, gateway, monitoring and the local stack.

Dependencies point inward: services import schemas, never streams.
"""
