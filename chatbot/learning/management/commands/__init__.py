"""manage.py drift_check."""
