"""The ``Store`` facade: the storage API the server codes against (contract §6).

Each public write opens exactly one transaction (:func:`flagstaff.store.db.write_tx`) in
which the repository modules write the new state, its audit record and its change event.
All arguments are keyword-only; all errors are :mod:`flagstaff.errors` classes.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from flagstaff.engine import resolve_flag
from flagstaff.errors import FlagstaffError, Invalid, NotFound
from flagstaff.store import (
    audit,
    changelog,
    environments,
    flag_writes,
    flags,
    segments,
    tokens,
)
from flagstaff.store.client_access_store import ClientAccessStoreMixin
from flagstaff.store.code_reference_store import CodeReferenceStoreMixin
from flagstaff.store.db import create_db_engine, read_tx, run_migrations, translate, write_tx
from flagstaff.store.experiment_store import ExperimentStoreMixin
from flagstaff.store.flag_order import parse_order
from flagstaff.store.fleet_store import FleetStoreMixin
from flagstaff.store.governance.facade import GovernanceStoreMixin
from flagstaff.store.records import (
    AuditRecord,
    ChangeEvent,
    EnvironmentRecord,
    FlagRecord,
    Page,
    SegmentRecord,
    TokenRecord,
)

BOOTSTRAP_ACTOR = "system:bootstrap"


class Store(
    ExperimentStoreMixin, ClientAccessStoreMixin, FleetStoreMixin, GovernanceStoreMixin,
    CodeReferenceStoreMixin,
):
    """Flags, segments, environments, tokens, audit and change log here; ingestion,
    exposures, experiments and lifecycle in :class:`ExperimentStoreMixin`; browser access in
    :class:`ClientAccessStoreMixin`; the fleet view in :class:`FleetStoreMixin`; policies,
    change requests, schedules, webhooks and triggers in :class:`GovernanceStoreMixin`."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> Store:
        """Connect, migrate to head (default environments included) and return the store."""
        engine = create_db_engine(url)
        try:
            run_migrations(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    def close(self, *, grace_seconds: float = 5.0) -> None:
        """Close every pooled connection.  Connections still checked out (a worker thread
        finishing a request, a background flush) get ``grace_seconds`` to come back first:
        one returned to an already disposed pool is dropped without being closed, which the
        driver reports as a leak."""
        checkedout = getattr(self.engine.pool, "checkedout", None)
        deadline = time.monotonic() + grace_seconds
        while checkedout is not None and checkedout() > 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        self.engine.dispose()
        # Whatever still reaches the store after this (a straggling background job) gets a
        # connection closed when it is returned, not one parked in a pool nobody will close.
        pool = self.engine.pool
        self.engine.pool = sa.pool.NullPool(
            pool._creator, recycle=pool._recycle, echo=pool.echo,
            logging_name=pool._orig_logging_name, reset_on_return=pool._reset_on_return,
            _dispatch=pool.dispatch, dialect=pool._dialect,
        )

    def ping(self) -> None:
        """Raise :class:`~flagstaff.errors.Unavailable` unless the database answers."""
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError as exc:
            raise translate(exc) from exc

    # -- flags -------------------------------------------------------------------------------

    def create_flag(self, *, definition: Any, actor: str) -> FlagRecord:
        with write_tx(self.engine) as conn:
            return flag_writes.create(conn, definition=definition, actor=actor)

    def get_flag(self, *, key: str) -> FlagRecord:
        with read_tx(self.engine) as conn:
            return flag_writes.get_or_404(conn, key=key)

    def list_flags(
        self,
        *,
        state: str | None = None,
        tag: str | None = None,
        q: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        sort: str | None = None,
    ) -> Page[FlagRecord]:
        """A page of flags; ``sort`` is ``[-]field`` (:mod:`flagstaff.store.flag_order`)."""
        if state is not None and state not in flags.STATES:
            raise Invalid("state must be active or archived", details={"field": "state"})
        order = parse_order(sort)
        with read_tx(self.engine) as conn:
            return flags.list_page(
                conn, state=state, tag=tag, q=q, limit=limit, cursor=cursor, order=order
            )

    def replace_flag(
        self, *, key: str, definition: Any, actor: str, if_match: int | None = None
    ) -> FlagRecord:
        clean = flag_writes.normalise(definition, key=key)
        with write_tx(self.engine) as conn:
            return flag_writes.write(
                conn,
                key=key,
                actor=actor,
                if_match=if_match,
                action="updated",
                change=lambda current: (clean, current.state),
            )

    def revert_flag(
        self, *, key: str, version: int, actor: str, if_match: int | None = None
    ) -> FlagRecord:
        """Make a flag's definition what it was at ``version``, as a new audited write (its
        record says which version it restored); the state (active/archived) is kept."""
        with write_tx(self.engine) as conn:
            old = audit.flag_version(conn, key=key, version=version)
            if old is None:
                raise NotFound(
                    f"flag '{key}' has no version {version} in its history",
                    details={"field": "version"},
                )
            clean = flag_writes.normalise(flags.pure(old), key=key)
            return flag_writes.write(
                conn, key=key, actor=actor, if_match=if_match, action="updated",
                change=lambda current: (clean, current.state), note={"reverted_to": version},
            )

    def patch_flag(
        self, *, key: str, patch: Any, actor: str, if_match: int | None = None
    ) -> FlagRecord:
        """Apply an RFC 7396 merge patch to the canonical definition, then validate."""
        if not isinstance(patch, dict):
            raise Invalid("a merge patch must be a JSON object", details={"field": ""})
        if "key" in patch and patch["key"] != key:
            raise Invalid(
                f"the key of a flag cannot be changed (is '{key}')", details={"field": "key"}
            )

        def change(current: FlagRecord) -> tuple[dict[str, Any], str]:
            merged = flag_writes.merge_patch(flags.pure(current.definition), patch)
            return flag_writes.normalise(merged, key=key), current.state

        with write_tx(self.engine) as conn:
            return flag_writes.write(
                conn, key=key, actor=actor, if_match=if_match, action="updated", change=change
            )

    def set_flag_enabled(
        self,
        *,
        key: str,
        environment: str,
        enabled: bool,
        actor: str,
        if_match: int | None = None,
        action: str = "toggled",
        reason: str | None = None,
    ) -> FlagRecord:
        """Flip one environment's kill switch (``action`` is ``toggled`` or ``killed``);
        ``reason`` (why, in the actor's words) is kept in the audit record's context."""
        if not isinstance(enabled, bool):
            raise Invalid("enabled must be true or false", details={"field": "enabled"})
        if action not in ("toggled", "killed"):
            raise ValueError(f"unknown toggle action {action!r}")

        def change(current: FlagRecord) -> tuple[dict[str, Any], str]:
            definition = flags.pure(current.definition)
            configs = definition.setdefault("environments", {})
            # A missing environment already means disabled; do not add an empty config for it.
            if environment in configs or enabled:
                configs.setdefault(environment, {})["enabled"] = enabled
            return flag_writes.normalise(definition, key=key), current.state

        with write_tx(self.engine) as conn:
            environments.get_or_404(conn, key=environment)
            return flag_writes.write(
                conn,
                key=key,
                actor=actor,
                if_match=if_match,
                action=action,
                change=change,
                environment=environment,
                note={"reason": reason} if reason else None,
            )

    def archive_flag(self, *, key: str, actor: str, if_match: int | None = None) -> FlagRecord:
        """Soft delete; refused while an active flag lists this one as a prerequisite."""
        with write_tx(self.engine) as conn:
            flag_writes.refuse_if_prerequisite(conn, key=key)
            return flag_writes.write(
                conn,
                key=key,
                actor=actor,
                if_match=if_match,
                action="archived",
                change=lambda current: (flags.pure(current.definition), "archived"),
                allow_archived=True,
            )

    def restore_flag(self, *, key: str, actor: str, if_match: int | None = None) -> FlagRecord:
        """Make an archived flag active again (its references are checked again)."""
        with write_tx(self.engine) as conn:
            return flag_writes.write(
                conn,
                key=key,
                actor=actor,
                if_match=if_match,
                action="restored",
                change=lambda current: (flags.pure(current.definition), "active"),
                allow_archived=True,
            )

    # -- segments ----------------------------------------------------------------------------

    def create_segment(self, *, definition: Any, actor: str) -> SegmentRecord:
        with write_tx(self.engine) as conn:
            return segments.create(conn, definition=definition, actor=actor)

    def get_segment(self, *, key: str) -> SegmentRecord:
        with read_tx(self.engine) as conn:
            return segments.get_or_404(conn, key=key)

    def list_segments(self, *, limit: int = 50, cursor: str | None = None) -> Page[SegmentRecord]:
        with read_tx(self.engine) as conn:
            return segments.list_page(conn, limit=limit, cursor=cursor)

    def replace_segment(
        self, *, key: str, definition: Any, actor: str, if_match: int | None = None
    ) -> SegmentRecord:
        with write_tx(self.engine) as conn:
            return segments.replace(
                conn, key=key, definition=definition, actor=actor, if_match=if_match
            )

    def delete_segment(self, *, key: str, actor: str) -> None:
        with write_tx(self.engine) as conn:
            segments.delete(conn, key=key, actor=actor)

    # -- environments ------------------------------------------------------------------------

    def create_environment(self, *, key: Any, name: Any = None, actor: str) -> EnvironmentRecord:
        with write_tx(self.engine) as conn:
            return environments.create(conn, key=key, name=name, actor=actor)

    def list_environments(self) -> list[EnvironmentRecord]:
        with read_tx(self.engine) as conn:
            return environments.list_all(conn)

    def get_environment(self, *, key: str) -> EnvironmentRecord:
        with read_tx(self.engine) as conn:
            return environments.get_or_404(conn, key=key)

    def environment_exists(self, *, key: str) -> bool:
        with read_tx(self.engine) as conn:
            return environments.get(conn, key=key) is not None

    def delete_environment(self, *, key: str, actor: str) -> None:
        with write_tx(self.engine) as conn:
            environments.delete(conn, key=key, actor=actor)

    # -- audit -------------------------------------------------------------------------------

    def list_audit(
        self,
        *,
        target_kind: str | None = None,
        target_key: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        environment: str | None = None,
        newest_first: bool = False,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[AuditRecord]:
        with read_tx(self.engine) as conn:
            return audit.list_audit(
                conn,
                target_kind=target_kind,
                target_key=target_key,
                actor=actor,
                action=action,
                since=since,
                until=until,
                environment=environment,
                newest_first=newest_first,
                limit=limit,
                cursor=cursor,
            )

    # -- tokens ------------------------------------------------------------------------------

    def create_token(
        self,
        *,
        name: Any,
        kind: Any,
        role: Any = None,
        environment: Any = None,
        actor: str,
        secret: str | None = None,
    ) -> tuple[TokenRecord, str]:
        """Create a token; the returned secret is never retrievable again."""
        with write_tx(self.engine) as conn:
            return tokens.create(
                conn,
                name=name,
                kind=kind,
                role=role,
                environment=environment,
                actor=actor,
                secret=secret,
            )

    def get_token(self, *, token_id: str) -> TokenRecord:
        """A token by id (revoked ones too: check ``revoked``); NotFound if there is none."""
        with read_tx(self.engine) as conn:
            return tokens.get_or_404(conn, token_id=token_id)

    def list_tokens(self) -> list[TokenRecord]:
        with read_tx(self.engine) as conn:
            return tokens.list_all(conn)

    def revoke_token(self, *, token_id: str, actor: str) -> TokenRecord:
        with write_tx(self.engine) as conn:
            return tokens.revoke(conn, token_id=token_id, actor=actor)

    def count_tokens(self) -> int:
        with read_tx(self.engine) as conn:
            return tokens.count(conn)

    def authenticate(self, *, secret: str) -> TokenRecord | None:
        """The live token for ``secret``, or None (unknown or revoked)."""
        if not isinstance(secret, str) or not secret:
            return None
        with read_tx(self.engine) as conn:
            found = tokens.find(conn, secret=secret)
        if found is None:
            return None
        record, due = found
        if due:
            try:
                with write_tx(self.engine, serialise=False) as conn:
                    tokens.touch(conn, token_id=record.id)
            except FlagstaffError:
                pass  # last_used_at is best effort; a busy database must not refuse the request
        return record

    def live_sdk_keys(self, *, hashes: list[str]) -> dict[str, TokenRecord]:
        """Live SDK keys by the SHA-256 hex of their secrets (for relays checking keys)."""
        with read_tx(self.engine) as conn:
            return tokens.live_sdk_keys(conn, hashes=hashes)

    def ensure_bootstrap_admin(self, *, secret: str | None = None) -> str | None:
        """On an empty token table create an admin token and return its secret, else None."""
        with write_tx(self.engine) as conn:
            if tokens.count(conn):
                return None
            _, plain = tokens.create(
                conn,
                name="bootstrap admin",
                kind="management",
                role="admin",
                actor=BOOTSTRAP_ACTOR,
                secret=secret,
            )
            return plain

    # -- change log and snapshots ------------------------------------------------------------

    def latest_event_id(self) -> int:
        with read_tx(self.engine) as conn:
            return changelog.latest_event_id(conn)

    def oldest_event_id(self) -> int | None:
        with read_tx(self.engine) as conn:
            return changelog.oldest_event_id(conn)

    def events_since(self, *, after_id: int, limit: int = 1000) -> list[ChangeEvent]:
        with read_tx(self.engine) as conn:
            return changelog.events_since(conn, after_id=after_id, limit=limit)

    def prune(self, *, max_age_seconds: float | None = None, max_count: int | None = None) -> int:
        """Apply change-log retention; returns how many events were deleted."""
        with write_tx(self.engine) as conn:
            return changelog.prune(conn, max_age_seconds=max_age_seconds, max_count=max_count)

    def snapshot(self, *, environment: str) -> dict[str, Any]:
        """Contract §3 snapshot, read from one database snapshot with its event id."""
        with read_tx(self.engine, consistent=True) as conn:
            version = changelog.latest_event_id(conn)
            environments.get_or_404(conn, key=environment)
            active = flags.all_active(conn)
            segment_records = segments.all_segments(conn)
        return {
            "environment": environment,
            "version": version,
            "flags": {f.key: resolve_flag(f.definition, environment) for f in active},
            "segments": {s.key: s.definition for s in segment_records},
        }
