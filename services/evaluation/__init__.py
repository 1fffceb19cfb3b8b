"""Retrieval quality: labelled sets, offline evaluation runs and metrics, and golden queries a deployment gates on.

`xmodal eval` (cli/eval.py) reads a set (sets.py; demo.py: the demo catalogue's), asks its queries of a
live gateway over HTTP (client.py, runner.py), scores the answers (metrics.py: ir-measures + bootstrap
intervals) and prints and writes the report (report.py). An evaluation reaches the gateway only over
HTTP, so it measures what users get; it imports neither the gateway nor the store.
"""
