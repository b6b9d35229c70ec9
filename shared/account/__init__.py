"""A learner's account as a whole: the export of all their data, and its erasure."""
