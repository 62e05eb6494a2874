"""The dashboard HTTP API (SPEC §5); see ``api/README.md`` and ``api.main.create_app``."""
