from __future__ import annotations

import contextlib

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flagstaff.flagfile import FlagFileError, demo_path, dumps, load_file, loads

FLAG_KEY = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,12}", fullmatch=True)


def test_demo_round_trips_exactly() -> None:
    loaded = load_file(demo_path())
    text = dumps(loaded.flags, loaded.segments, loaded.environments)
    again = loads(text)
    assert again == loaded
    assert dumps(again.flags, again.segments, again.environments) == text


def test_dump_drops_server_fields_and_orders_keys() -> None:
    [flag] = loads("flags: [{key: a, type: boolean}]").flags
    served = {"state": "active", "version": 3, "updated_at": "2024-01-01T00:00:00Z", **flag}
    text = dumps([served], [], ["production"])
    assert "version" not in text and "state:" not in text
    body = yaml.safe_load(text)
    assert list(body) == ["environments", "segments", "flags"]
    assert list(body["flags"][0])[:4] == ["key", "name", "description", "type"]
    # Quoted so YAML reads the variant keys back as strings, not booleans.
    assert "'true': true" in text


def test_unicode_line_breaks_survive_the_round_trip() -> None:
    [flag] = loads(
        yaml.safe_dump({"flags": [{"key": "a", "type": "boolean", "description": "x\x85y\u2028z"}]})
    ).flags
    assert loads(dumps([flag])).flags == [flag]


def test_variant_keys_that_look_like_other_types_survive() -> None:
    [flag] = loads(
        "flags: [{key: n, type: number, variants: {'4': 4, '1e3': 1000, 'null': 0}, off_variant: '4'}]"
    ).flags
    [back] = loads(dumps([flag])).flags
    assert back == flag


json_scalars = st.one_of(
    st.booleans(), st.integers(-(10**6), 10**6), st.text(max_size=12), st.none()
)


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    keys=st.lists(FLAG_KEY, min_size=1, max_size=4, unique=True),
    values=st.lists(st.text(min_size=1, max_size=10), min_size=1, max_size=4, unique=True),
    percent=st.integers(0, 100),
)
def test_generated_string_flags_round_trip(
    keys: list[str], values: list[str], percent: int
) -> None:
    flags = [
        {
            "key": key,
            "type": "string",
            "defaultValue": values[0],
            "enabled": True,
            "rules": [
                {
                    "id": f"r{i}",
                    "conditions": [{"attribute": "a", "operator": "equals", "value": v}],
                    "value": v,
                }
                for i, v in enumerate(values)
            ],
            "fallthrough": {"percentage": percent, "value": values[-1]},
        }
        for key in keys
    ]
    loaded = loads(yaml.safe_dump({"flags": flags}))
    assert [f["key"] for f in loaded.flags] == keys
    for flag in loaded.flags:
        assert sorted(map(str, flag["variants"].values())) == sorted(values)
    assert loads(dumps(loaded.flags, loaded.segments, loaded.environments)) == loaded


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_random_text_raises_only_flag_file_errors(text: str) -> None:
    with contextlib.suppress(FlagFileError):
        loads(text)


yamlish = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.sampled_from(
                ["flags", "key", "type", "variants", "environments", "rules", "enabled",
                 "defaultValue", "value", "conditions", "operator", "fallthrough", "percentage",
                 "serve", "segments", "off_variant", "killSwitch"]
            ),
            children,
            max_size=5,
        ),
    ),
    max_leaves=20,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["flags", "segments", "environments"]), yamlish))
def test_random_structures_raise_only_flag_file_errors(document: dict[str, object]) -> None:
    with contextlib.suppress(FlagFileError):
        loads(yaml.safe_dump(document))
