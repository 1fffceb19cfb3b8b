"""The Faust application: topics, the ingest agent and the `xmodal` CLI. The only package that imports faust."""
