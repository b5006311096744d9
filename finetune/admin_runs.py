"""Training run admin (filled in by the training work)."""
