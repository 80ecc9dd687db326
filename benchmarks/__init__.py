"""Speed benchmarks on full-size random weights (same compute as real weights).

Run from the repository root with ``python -m benchmarks.run`` (``make bench``).
"""
