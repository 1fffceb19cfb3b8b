"""The ingest pipeline, free of Faust: records in, Weaviate writes and dead letters out.

streams/ feeds it micro-batches taken from Kafka without acking and acks each record only after
:meth:`IngestPipeline.process` returned (every effect stored or dead-lettered).
"""
