"""rlog: reasoning-based log anomaly detection (R-Log) for streaming pipelines."""

__version__ = "0.1.0"
