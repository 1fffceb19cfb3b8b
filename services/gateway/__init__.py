"""The search gateway: an aiohttp app answering text, image and "more like this" searches over the asset
store, with read-your-writes via Kafka offsets, a search page at / and /openapi.json.

Layout: models.py (request/response bodies, the source of openapi.py), routes.py (handlers),
query.py (request -> vector -> store search), middleware.py (errors, auth, limits, CORS),
encoder.py and backends.py (the model, Weaviate and Kafka behind small protocols in deps.py),
server.py (``create_app`` and ``run_gateway``), static/ (the page).
"""
