"""The search gateway: an aiohttp app answering text, image and "more like this" searches over the asset
store, with read-your-writes via Kafka offsets, a search page at /, a status page at /status and
/openapi.json.

Layout: models.py (request/response bodies, the source of openapi.py), routes.py (handlers),
query.py (request -> vector -> store search), middleware.py (errors, auth, limits, CORS) and deadline.py
(the request's deadline), encoder.py (query embedding: cache, batchers, their metrics), rerank.py (the
second stage of `rerank: true`: window, budget, degrading) and rerankers.py (bi- and cross-encoder), backends.py
(Weaviate and Kafka behind the small protocols in deps.py), status_page.py (/status and /v1/status over a
StatusCollector), server.py (``create_app`` and ``run_gateway``), static/ (both pages' files).
"""
