"""Benchmarks: rlog and the baselines on the same sessions; quality, speed, cost (`rlog bench`)."""
