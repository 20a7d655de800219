"""Benchmark suites (``bench_<suite>.py``), run as scripts by ``autophase bench``; installed as
``autophase.benchmarks`` so that a wheel carries them. Results: ``results/*.json``."""
