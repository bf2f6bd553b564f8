"""One run's machinery: its parts built from the config, the loop, the step, state and
checkpoints."""
