"""Admin registrations live in two modules: labelling/import, and training runs."""

from finetune import admin_runs, admin_tickets  # noqa: F401  (they register on import)
