"""Training: readers of the labelled data in ``../shared/data`` (``datasets``), losses, loops, recipes."""
