"""The Faust application: the app and its topics (app.py), the ingest agent (agents.py) and the worker that
runs them (worker.py). The only package that imports faust; the `xmodal` command line lives in cli/."""
