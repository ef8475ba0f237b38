"""The attack and failure suite: every security claim of the README as tests.

Each test may record how many cases it tried with ``record_property("cases", n)``; the summary
table printed at the end of the run (see the root conftest) groups them by suite file.
"""
