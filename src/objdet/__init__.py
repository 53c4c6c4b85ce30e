"""objdet: exact, fast, bounded-memory metrics for object and anomaly detection."""

__version__ = "0.1.0"
