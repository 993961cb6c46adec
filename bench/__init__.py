"""Benchmarks: each module here runs alone (`python -m bench.<name>`) and prints a markdown section."""
