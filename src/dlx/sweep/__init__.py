"""Sweeps: the Hydra app behind ``dlx train``, its launch, and what a sweep leaves."""
