"""Benchmarks: scripts that print a table and save JSON under bench/results/ (run as python bench/<name>.py)."""
