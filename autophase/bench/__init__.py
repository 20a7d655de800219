"""Benchmark support: the JSON record every suite under benchmarks/ writes."""
