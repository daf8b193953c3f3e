"""The bias audit with real fairlearn: group counts and shares, warnings, missing values."""
from __future__ import annotations

import pytest

from conftest import alpaca

PARAMS = {"min_group_share": 0.05, "max_imbalance_ratio": 10}


def _records(prefix: str, groups: list[str | None], field: str = "region") -> list[dict]:
    return [alpaca(f"{prefix} question {i}", f"answer {i}", **({field: g} if g is not None else {}))
            for i, g in enumerate(groups)]


def test_known_counts_give_shares_and_per_split_counts(run_stage):
    splits = {"train": _records("t", ["north"] * 4 + ["south"] * 2),
              "validation": _records("v", ["north", "south"]),
              "test": _records("x", ["south", "east"])}
    result, _ = run_stage("bias", {"fields": ["region"], **PARAMS}, splits)
    audit = result.summary["fields"]["region"]
    assert audit["groups"] == {"north": {"count": 5, "share": 0.5}, "south": {"count": 4, "share": 0.4},
                               "east": {"count": 1, "share": 0.1}}
    assert audit["by_split"] == {"train": {"north": 4, "south": 2}, "validation": {"north": 1, "south": 1},
                                 "test": {"east": 1, "south": 1}}
    assert audit["min_share"] == 0.1
    assert audit["imbalance_ratio"] == 5
    assert audit["status"] == "pass" and audit["reasons"] == []
    assert result.summary["status"] == "pass"
    assert result.removed == {} and result.added == {}


def test_tiny_group_warns_on_share_and_ratio(run_stage):
    splits = {"train": _records("t", ["big"] * 40 + ["tiny"]), "validation": [], "test": []}
    result, _ = run_stage("bias", {"fields": ["region"], **PARAMS}, splits)
    audit = result.summary["fields"]["region"]
    assert audit["status"] == "warn"
    assert audit["imbalance_ratio"] == 40
    assert audit["min_share"] == pytest.approx(1 / 41, abs=1e-6)
    assert len(audit["reasons"]) == 2
    assert "'tiny'" in audit["reasons"][0] and "5.0%" in audit["reasons"][0]
    assert "40.0 times" in audit["reasons"][1]
    assert result.summary["status"] == "warn"


def test_missing_field_is_its_own_group(run_stage):
    splits = {"train": _records("t", ["a", "b", None, "a"]), "validation": _records("v", [None]), "test": []}
    result, _ = run_stage("bias", {"fields": ["region"], **PARAMS}, splits)
    groups = result.summary["fields"]["region"]["groups"]
    assert groups["(missing)"] == {"count": 2, "share": 0.4}
    assert result.summary["fields"]["region"]["by_split"]["validation"] == {"(missing)": 1}


def test_worst_field_sets_overall_status_and_non_strings_are_named(run_stage):
    train = [alpaca(f"q {i}", "a", region="north", member=i < 24) for i in range(25)]
    result, _ = run_stage("bias", {"fields": ["region", "member"], **PARAMS},
                          {"train": train, "validation": [], "test": []})
    fields = result.summary["fields"]
    assert fields["region"]["status"] == "pass"
    assert fields["member"]["groups"] == {"true": {"count": 24, "share": 0.96}, "false": {"count": 1, "share": 0.04}}
    assert fields["member"]["status"] == "warn"
    assert result.summary["status"] == "warn"


def test_listing_is_capped_at_fifty_groups(run_stage):
    train = _records("t", [f"g{i:02d}" for i in range(60) for _ in range(2)] + ["g00"])
    result, _ = run_stage("bias", {"fields": ["region"], "min_group_share": 0.0, "max_imbalance_ratio": 10},
                          {"train": train, "validation": [], "test": []})
    audit = result.summary["fields"]["region"]
    assert len(audit["groups"]) == 50 and audit["groups_not_listed"] == 10
    assert next(iter(audit["groups"])) == "g00"  # largest first
    assert audit["min_share"] == round(2 / 121, 6)


def test_no_records_warns_instead_of_failing(run_stage):
    result, _ = run_stage("bias", {"fields": ["region"], **PARAMS}, {"train": [], "validation": [], "test": []})
    assert result.summary["fields"]["region"]["status"] == "warn"
    assert result.summary["fields"]["region"]["reasons"] == ["no records to audit"]
