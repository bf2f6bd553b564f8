"""The ``dlx`` verbs beyond train: each a thin module over the engine."""
