"""Benchmarks of posendf_plugin: ``python benchmarks/run.py`` (see README.md) and the speed
scripts ``bench_*.py``."""
