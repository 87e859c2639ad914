"""The platform on one machine, and client tools for any Triton endpoint.

``python -m local up``     render the CPU repository, build its engines, serve it on a real Triton with a
                           real Prometheus, run the voice pipeline once, print endpoints and latencies.
``python -m local smoke``  every model ready and answering correctly (exit status for CI).
``python -m local bench``  concurrency sweep: throughput and p50/p95/p99 per level, JSON and a plot.
``python -m local tune``   sweep batching and instance counts per model, write the catalog override.
"""
