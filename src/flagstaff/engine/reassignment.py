"""Which users a change to a rollout moves, computed from the bucket ranges (never sampled).

A rollout gives each variation a consecutive range of the buckets ``[0, 100_000)`` in declared
order (:mod:`flagstaff.engine.bucketing`), and a context's bucket depends only on the salt and
the bucketing value.  So, for two versions of the same serve:

- same salt and ``bucket_by``: a context keeps its bucket, and the share of users that get
  another variant is exactly the length of the bucket ranges whose variant differs, / 100,000;
- another salt or ``bucket_by``: every context gets an unrelated bucket, so the share moved is
  the expected ``1 - sum(p_old(v) * p_new(v))`` over the variants (reported as not exact);
- a fixed variant on either side: exactly the share of buckets serving another variant.

:func:`reassignments` lists these per serve (fallthroughs, and rules matched by id) for a
write; :func:`keep_variation_order` turns a write that only lists the same variations in
another order back into the stored order, because the order alone would move users while the
person meant no change (docs/evaluation.md, "What reassigns users").
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from flagstaff.engine.bucketing import BUCKETS

# Bucketing by any of these names is bucketing by the targeting key (compiler._split).
_TARGETING_KEY = ("key", "targeting_key")


@dataclass(frozen=True)
class Reassignment:
    """The users one serve moves to another variant by a write.

    ``share`` is the fraction of the contexts that reach this serve; ``exact`` is False when the
    salt or ``bucket_by`` changed, where ``share`` is the expectation over independent hashes.
    """

    path: str
    share: float
    exact: bool
    causes: tuple[str, ...]

    def to_change(self) -> dict[str, Any]:
        """The audit diff entry (op ``reassign``) that states it."""
        return {
            "path": self.path,
            "op": "reassign",
            "old": None,
            "new": None,
            "share": self.share,
            "exact": self.exact,
            "causes": list(self.causes),
        }


def describe(change: Mapping[str, Any]) -> str:
    """A ``reassign`` diff entry in words: ``moves 20.4 % of its users to another variant (order)``."""
    percent = f"{float(change.get('share') or 0) * 100:.3f}".rstrip("0").rstrip(".")
    about = "" if change.get("exact", True) else "about "
    causes = ", ".join(str(c) for c in change.get("causes") or [])
    return f"moves {about}{percent} % of its users to another variant ({causes})"


def _thousandths(weight: Any) -> int:
    return round(float(weight) * 1000)


def ranges(variations: list[Mapping[str, Any]]) -> list[tuple[int, int, str]]:
    """``(start, end, variant)`` of each variation's bucket range (zero-weight ones hold none)."""
    out = []
    start = 0
    for item in variations:
        end = start + _thousandths(item["weight"])
        if end > start:
            out.append((start, end, item["variant"]))
        start = end
    return out


def moved_buckets(old: list[Mapping[str, Any]], new: list[Mapping[str, Any]]) -> int:
    """How many of the 100,000 buckets serve another variant under ``new`` than under ``old``."""
    old_ranges, new_ranges = ranges(old), ranges(new)
    moved = 0
    i = j = 0
    position = 0
    while i < len(old_ranges) and j < len(new_ranges):
        old_start, old_end, old_variant = old_ranges[i]
        new_start, new_end, new_variant = new_ranges[j]
        end = min(old_end, new_end)
        start = max(position, old_start, new_start)
        if end > start and old_variant != new_variant:
            moved += end - start
        position = end
        if old_end == end:
            i += 1
        if new_end == end:
            j += 1
    return moved


def _shares(serve: Mapping[str, Any]) -> dict[str, int]:
    """Buckets per variant (out of 100,000)."""
    if "variant" in serve:
        return {serve["variant"]: BUCKETS}
    shares: dict[str, int] = {}
    for item in serve["rollout"]["variations"]:
        shares[item["variant"]] = shares.get(item["variant"], 0) + _thousandths(item["weight"])
    return shares


def _bucket_by(rollout: Mapping[str, Any]) -> object:
    value = rollout.get("bucket_by") or "key"
    if isinstance(value, list):
        return tuple("key" if v in _TARGETING_KEY else v for v in value)
    return "key" if value in _TARGETING_KEY else value


def _salt(rollout: Mapping[str, Any], flag: Mapping[str, Any]) -> str:
    return str(rollout.get("salt") or flag.get("salt") or flag["key"])


def _causes(
    old: Mapping[str, Any], new: Mapping[str, Any], old_flag: Mapping[str, Any], new_flag: Mapping[str, Any]
) -> tuple[str, ...]:
    if "rollout" not in old or "rollout" not in new:
        return ("serve",)
    causes = []
    old_vars, new_vars = old["rollout"]["variations"], new["rollout"]["variations"]
    if _shares(old) != _shares(new):
        causes.append("weights")
    elif [v["variant"] for v in old_vars] != [v["variant"] for v in new_vars]:
        causes.append("order")
    if _salt(old["rollout"], old_flag) != _salt(new["rollout"], new_flag):
        causes.append("salt")
    if _bucket_by(old["rollout"]) != _bucket_by(new["rollout"]):
        causes.append("bucket_by")
    return tuple(causes)


def reassigned(
    path: str,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    *,
    old_flag: Mapping[str, Any],
    new_flag: Mapping[str, Any],
) -> Reassignment | None:
    """What changing serve ``old`` into ``new`` does to its users; None for no rollout change.

    A change between two fixed variants is not a rollout change (everyone moves, as the diff
    says plainly); neither is a rollout whose variations, salt and ``bucket_by`` are the same.
    """
    if "rollout" not in old and "rollout" not in new:
        return None
    causes = _causes(old, new, old_flag, new_flag)
    if not causes:
        return None
    old_shares, new_shares = _shares(old), _shares(new)
    if "rollout" in old and "rollout" in new and not {"salt", "bucket_by"} & set(causes):
        moved = moved_buckets(old["rollout"]["variations"], new["rollout"]["variations"])
        return Reassignment(path, moved / BUCKETS, True, causes)
    if "variant" in old or "variant" in new:
        fixed, other = (old, new_shares) if "variant" in old else (new, old_shares)
        moved = BUCKETS - other.get(fixed["variant"], 0)
        return Reassignment(path, moved / BUCKETS, True, causes)
    kept = sum(share * new_shares.get(variant, 0) for variant, share in old_shares.items())
    return Reassignment(path, round(1 - kept / BUCKETS**2, 10), False, causes)


def _serve_or_off(serve: Mapping[str, Any] | None, flag: Mapping[str, Any]) -> Mapping[str, Any]:
    # A null fallthrough serves the off variant to everyone.
    return serve if serve is not None else {"variant": flag["off_variant"]}


def _serves(flag: Mapping[str, Any]) -> Iterator[tuple[str, str, str | None, Mapping[str, Any] | None]]:
    """``(environment, path, rule id, serve)`` of every fallthrough and rule serve."""
    for env_key, env in (flag.get("environments") or {}).items():
        base = f"environments.{env_key}"
        yield env_key, f"{base}.fallthrough", None, env.get("fallthrough")
        for index, rule in enumerate(env.get("rules") or []):
            yield env_key, f"{base}.rules[{index}].serve", rule.get("id"), rule.get("serve")


def _serve_at(flag: Mapping[str, Any], env_key: str, rule_id: str | None) -> tuple[bool, Any]:
    """``(found, serve)``: the fallthrough (rule_id None) or the rule with that id."""
    env = (flag.get("environments") or {}).get(env_key)
    if env is None:
        return False, None
    if rule_id is None:
        return True, env.get("fallthrough")
    for rule in env.get("rules") or []:
        if rule.get("id") == rule_id:
            return True, rule.get("serve")
    return False, None


def reassignments(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Reassignment]:
    """The serves of ``after`` whose users a write from ``before`` moves (paths of ``after``).

    Rules are matched by id; a rule or environment that is new has no users to move yet.
    """
    out = []
    for env_key, path, rule_id, new in _serves(after):
        found, old = _serve_at(before, env_key, rule_id)
        if not found or (rule_id is not None and (old is None or new is None)):
            continue
        change = reassigned(
            path,
            _serve_or_off(old, before),
            _serve_or_off(new, after),
            old_flag=before,
            new_flag=after,
        )
        if change is not None:
            out.append(change)
    return out


def _same_variations(old: Any, new: Any) -> bool:
    if not isinstance(old, list) or not isinstance(new, list) or len(old) != len(new):
        return False
    as_shares = [{v["variant"]: _thousandths(v["weight"]) for v in side} for side in (old, new)]
    return as_shares[0] == as_shares[1]


def _rollout_of(serve: Any) -> Any:
    return serve.get("rollout") if isinstance(serve, Mapping) else None


def keep_variation_order(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """``after`` with every rollout (and experiment) that lists the same variations and weights
    as in ``before`` in another order given back ``before``'s list; ``after`` is not modified.
    """
    result = copy.deepcopy(dict(after))
    for env_key, env in (result.get("environments") or {}).items():
        places: list[tuple[Any, Any]] = []
        _, old_fallthrough = _serve_at(before, env_key, None)
        places.append((_rollout_of(old_fallthrough), _rollout_of(env.get("fallthrough"))))
        for rule in env.get("rules") or []:
            _, old_serve = _serve_at(before, env_key, rule.get("id"))
            places.append((_rollout_of(old_serve), _rollout_of(rule.get("serve"))))
        old_env = (before.get("environments") or {}).get(env_key) or {}
        places.append((old_env.get("experiment"), env.get("experiment")))
        for old, new in places:
            if old is None or new is None:
                continue
            if _same_variations(old.get("variations"), new.get("variations")):
                new["variations"] = copy.deepcopy(old["variations"])
    return result
