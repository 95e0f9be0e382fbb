"""Benchmarks that print (and save) measured figures; none of them is a test."""
