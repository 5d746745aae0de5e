"""Corredor's benchmarks: each against its baseline, in the same run, on the same broker."""
