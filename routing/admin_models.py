"""ModelVersion admin."""
