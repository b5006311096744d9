"""The shared core every package may import: settings access, domain errors, JSON and REST plumbing, text rules. Imports no app."""
