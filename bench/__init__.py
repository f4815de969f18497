"""Benchmark of the embedding engine and server against the tools users would pick instead."""
