"""Benchmarks for flask-omi: ``make bench`` (``python -m benchmarks``). Not tests: nothing here asserts."""
