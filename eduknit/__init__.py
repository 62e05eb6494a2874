"""Entry points: the ``eduknit`` command line, the supervisor of ``make run`` and the demo.

The top layer: it composes ``streams`` (the worker) and ``api`` (the HTTP app),
which never import each other, over ``infra`` and ``schemas``.
"""
