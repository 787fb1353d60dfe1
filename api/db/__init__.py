"""The database layer: models, sessions, migrations and the repository functions."""
