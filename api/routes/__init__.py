"""One route module per resource: ``dashboard`` (``/api/dashboard/*``) and ``health``."""
