"""perfpulse: a real-time Linux performance monitor with correct, system-wide hardware counters."""

__version__ = "0.1.0"
