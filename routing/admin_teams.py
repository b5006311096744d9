"""Team admin."""
