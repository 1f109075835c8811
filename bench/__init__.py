"""Benchmarks that print tables and are never asserted by the test suite; run each as `python -m bench.<name>`.

bench.lifecycle   one volume's lifecycle: ours vs the seed's docker CLI approach vs the raw-SDK floor
bench.throughput  runs through a real Celery worker vs a plain docker SDK loop at the same concurrency
bench.soak        many runs across tenants through a real worker while failures are injected
"""
