from __future__ import annotations

import json
from pathlib import Path

import pytest

from flagstaff.flagfile import FlagFile, FlagFileError, demo_path, load_file, loads

ENVS = ("development", "staging", "production")


def _demo() -> dict[str, dict]:  # type: ignore[type-arg]
    return {flag["key"]: flag for flag in load_file(demo_path()).flags}


def test_demo_file_is_the_spec_text_verbatim() -> None:
    spec = next(Path("/work/shared/spec").glob("003_*.txt"), None)
    if spec is None:
        pytest.skip("spec not available on this machine")
    assert demo_path().read_text() in spec.read_text()


def test_demo_loads_with_default_environments() -> None:
    loaded = load_file(demo_path())
    assert [f["key"] for f in loaded.flags] == [
        "self-evolution-enabled",
        "parallel-agents-limit",
        "new-orchestrator-v2",
        "model-provider",
    ]
    assert loaded.environments == list(ENVS)
    assert loaded.segments == []


def test_boolean_rule_flag_converts_to_canonical() -> None:
    flag = _demo()["self-evolution-enabled"]
    assert flag["variants"] == {"true": True, "false": False}
    assert flag["off_variant"] == "false"
    assert flag["tags"] == ["self-evolution", "enterprise"]
    assert flag["owner"] == "platform-team"
    for env in ENVS:
        config = flag["environments"][env]
        assert config["enabled"] is True
        assert config["fallthrough"] is None
        [rule] = config["rules"]
        assert rule["id"] == "enterprise-only"
        assert rule["serve"] == {"variant": "true"}
        assert rule["conditions"] == [
            {
                "attribute": "tenant.type",
                "operator": "equals",
                "values": ["enterprise"],
                "negate": False,
            }
        ]


def test_number_flag_variants_are_the_string_form_of_each_value() -> None:
    flag = _demo()["parallel-agents-limit"]
    assert flag["type"] == "number"
    assert flag["variants"] == {"4": 4, "15": 15, "10": 10}
    assert flag["off_variant"] == "4"
    rules = flag["environments"]["production"]["rules"]
    assert [(r["id"], r["serve"]) for r in rules] == [
        ("enterprise-higher-limit", {"variant": "15"}),
        ("professional-medium-limit", {"variant": "10"}),
    ]


def test_fallthrough_percentage_becomes_a_rollout_against_the_default() -> None:
    flag = _demo()["new-orchestrator-v2"]
    config = flag["environments"]["staging"]
    assert config["fallthrough"] == {
        "rollout": {
            "variations": [{"variant": "true", "weight": 10}, {"variant": "false", "weight": 90}],
            "bucket_by": ["user.id", "tenant.id", "key"],  # the spec's bucket key, then ours
        }
    }
    assert config["rules"][0]["conditions"][0]["values"] == ["tenant-beta-1", "tenant-beta-2"]


def test_string_flag() -> None:
    flag = _demo()["model-provider"]
    assert flag["variants"] == {"anthropic": "anthropic", "openai": "openai"}
    assert flag["off_variant"] == "anthropic"
    assert flag["environments"]["production"]["rules"][0]["serve"] == {"variant": "openai"}


def test_spec_format_kill_switch_overrides_and_rule_percentage() -> None:
    loaded = loads(
        """
environments: [dev, prod]
flags:
  - key: checkout
    type: string
    defaultValue: old
    enabled: true
    rules:
      - id: half
        conditions: [{attribute: country, operator: equals, value: DE}]
        percentage: 25
        value: new
    environments:
      dev: {enabled: true, value: beta}
      prod: {enabled: false}
  - key: dead
    type: boolean
    defaultValue: false
    enabled: true
    killSwitch: true
"""
    )
    checkout, dead = loaded.flags
    assert loaded.environments == ["dev", "prod"]
    assert checkout["variants"] == {"old": "old", "new": "new", "beta": "beta"}
    assert checkout["environments"]["dev"]["rules"] == []
    assert checkout["environments"]["dev"]["fallthrough"] == {"variant": "beta"}
    assert checkout["environments"]["prod"]["enabled"] is False
    assert checkout["environments"]["prod"]["rules"][0]["serve"] == {
        "rollout": {
            "variations": [{"variant": "new", "weight": 25}, {"variant": "old", "weight": 75}],
            "bucket_by": ["user.id", "tenant.id", "key"],
        }
    }
    assert all(not c["enabled"] for c in dead["environments"].values())


def test_spec_variants_list_becomes_the_fallthrough_rollout() -> None:
    [flag] = loads(
        """
flags:
  - key: button
    type: string
    defaultValue: blue
    enabled: true
    variants:
      - {key: control, name: Control, value: blue, weight: 50}
      - {key: treatment, name: Treatment, value: green, weight: 50}
"""
    ).flags
    assert flag["variants"] == {"blue": "blue", "treatment": "green"}
    assert flag["environments"]["production"]["fallthrough"] == {
        "rollout": {
            "variations": [
                {"variant": "blue", "weight": 50},
                {"variant": "treatment", "weight": 50},
            ],
            "bucket_by": ["user.id", "tenant.id", "key"],
        }
    }


def test_canonical_format_and_json_are_accepted() -> None:
    canonical = {
        "environments": ["production"],
        "segments": [{"key": "beta", "name": "Beta", "included": ["u1"]}],
        "flags": [
            {
                "key": "f1",
                "type": "boolean",
                "environments": {
                    "production": {
                        "enabled": True,
                        "rules": [
                            {
                                "conditions": [{"operator": "segment_match", "values": ["beta"]}],
                                "serve": {"variant": "true"},
                            }
                        ],
                    }
                },
            }
        ],
    }
    loaded = loads(json.dumps(canonical), source="f.json")
    assert isinstance(loaded, FlagFile)
    assert loaded.segments[0]["included"] == ["u1"]
    rule = loaded.flags[0]["environments"]["production"]["rules"][0]
    assert rule["id"] == "rule-1" or rule["id"].startswith("rule-")
    assert loaded.flags[0]["variants"] == {"true": True, "false": False}


def test_server_managed_fields_are_ignored() -> None:
    [flag] = loads(
        "flags: [{key: a, type: boolean, version: 7, state: archived, created_at: x}]"
    ).flags
    assert not {"version", "state", "created_at"} & flag.keys()


BAD_OPERATOR = """\
flags:
  - key: ok
    type: boolean
  - key: broken
    type: boolean
    environments:
      production:
        enabled: true
        rules:
          - id: r1
            conditions:
              - attribute: country
                operator: is-roughly
                values: [DE]
            serve: {variant: "true"}
"""


def test_engine_error_names_the_file_line_of_the_node() -> None:
    with pytest.raises(FlagFileError) as info:
        loads(BAD_OPERATOR, source="flags.yaml")
    assert info.value.line == 13
    assert info.value.path == "flags.yaml"
    assert str(info.value).startswith("flags.yaml:13: ")
    assert "operator" in str(info.value)


def test_spec_format_error_points_at_the_spec_source_line() -> None:
    text = (
        demo_path()
        .read_text()
        .replace(
            'operator: "equals"\n            value: "professional"',
            'operator: "equalz"\n            value: "professional"',
        )
    )
    with pytest.raises(FlagFileError) as info:
        loads(text, source="demo.yaml")
    lines = text.splitlines()
    assert info.value.line is not None
    assert "equalz" in lines[info.value.line - 1]


def test_type_mismatch_in_spec_value_points_at_the_value() -> None:
    text = "flags:\n  - key: n\n    type: number\n    defaultValue: 4\n    enabled: true\n    rules:\n      - conditions: []\n        value: lots\n"
    with pytest.raises(FlagFileError) as info:
        loads(text, source="n.yaml")
    assert info.value.line == 8


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("flags:\n  - key: a\n    type: [\n", 4, "invalid YAML"),
        ("flags: []\nflagz: []\n", 2, "unknown top-level key"),
        ("flags:\n  - key: a\n    key: b\n", 3, "duplicate key"),
        ("flags:\n  - {key: a, type: boolean}\n  - {key: a, type: boolean}\n", 3, "defined twice"),
        ("environments: [Prod]\n", 1, "invalid environment key"),
        ("- just a list\n", None, "mapping"),
        (
            "flags:\n  - key: x\n    type: boolean\n    enabled: true\n",
            2,
            "defaultValue (or default_value) is required",
        ),
        ("flags:\n  - key: x\n    type: boolean\n    defaultValue: maybe\n", 4, "true or false"),
    ],
)
def test_structural_errors_have_lines(text: str, line: int | None, fragment: str) -> None:
    with pytest.raises(FlagFileError) as info:
        loads(text, source="x.yaml")
    assert fragment in str(info.value)
    assert info.value.line == line


def test_alias_bomb_and_recursion_are_refused() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for level in "bcdefghi":
        prev = chr(ord(level) - 1)
        bomb += f"{level}: &{level} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
    with pytest.raises(FlagFileError, match="too large"):
        loads(bomb)
    with pytest.raises(FlagFileError, match="recursive"):
        loads("flags: &a [*a]\n")


def test_load_file_reports_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FlagFileError) as info:
        load_file(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(info.value)
