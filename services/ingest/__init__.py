"""The ingest pipeline, free of Faust: records in, Weaviate writes and dead letters out, acks last.

Read in this order to follow one event from the consumer to its ack:

- ``protocol.py``: the batch protocol (batch N written while N+1 is prepared; ordered commits; re-prepare
  after a refused write; retries). The consumer adapter (streams/agents.py) calls ``BatchProtocol.submit``
  and passes an ``ack`` callback.
- ``prepare.py``: parse (``parse.py``), resolve each asset's events (``collapse.py``), load and decode the
  content (``content.py``), embed, isolating inputs that crash the model (``embed.py``).
- ``plans.py``: the decisions as types (Upsert, Delete, Poisoned, Letter) and the batch's report.
- ``write.py``: the store write and the dead letters, each confirmed once across retries.
"""
