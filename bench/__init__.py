"""The benchmark: ``bench/run [main|batch|deployment|streams|push]`` (bench/runner.py).

BENCHMARKS.md has the figures and, beside each table, the command that reproduces it.
"""
