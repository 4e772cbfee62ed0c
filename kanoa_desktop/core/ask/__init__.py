"""One question end to end: prompts, the pipeline, stream stats, token estimates, cost."""
