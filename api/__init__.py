"""The dashboard HTTP API (docs/api.md); see ``api/README.md`` and ``api.main.create_app``."""
