"""dlx: a config-driven deep-learning experiment runner for the classic curriculum."""

__version__ = "0.1.0"
