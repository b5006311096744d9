"""Management commands of the learning loop."""
