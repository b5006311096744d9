"""Admin registrations: teams, and model versions (with promotion, evaluation, shadow)."""

from routing import admin_models, admin_teams  # noqa: F401  (they register on import)
