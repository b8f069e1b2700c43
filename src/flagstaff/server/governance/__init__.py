"""Governed change in the server: the per-process scheduler and webhook dispatcher, and the
rules for calling webhook URLs.  Routes live in ``server/routes`` (one module per resource);
:func:`flagstaff.server.governance.workers.install` starts the workers in the app's lifespan.
"""
