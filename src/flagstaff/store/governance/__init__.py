"""Governed change: approval policies, change requests, scheduled changes, webhooks, triggers.

The repositories here take a connection inside the caller's transaction, like the rest of the
store.  This package's ``__init__`` imports nothing: :mod:`flagstaff.store.audit` imports the
outbox and :mod:`flagstaff.store.flag_writes` the policy guard, so importing the facade mixin
from here would close an import circle.
"""
