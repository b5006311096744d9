"""Ticket labelling admin (filled in by the foundation work)."""
