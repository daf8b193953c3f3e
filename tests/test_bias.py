"""The bias audit with real fairlearn: group counts and shares, warn and fail thresholds, missing values,
demographic mentions from the lexicon, the fields-or-mentions rule and how the report shows it all."""
from __future__ import annotations

import json
import textwrap

import pytest
from conftest import alpaca
from support.data import LOCAL_ENGINE, audit_params

from fttool.fairness.groups import MISSING_GROUP, group_value
from fttool.fairness.lexicon import CATEGORIES, LEXICON, groups_mentioned
from fttool.recipe import RecipeInvalid, compile_recipe
from fttool.recipe.schema import load_schema
from fttool.report.render import render_html, render_markdown

# k_anonymity 1: these tests name every group; the k-anonymity tests set their own.
PARAMS = {"min_group_share": 0.05, "max_imbalance_ratio": 10, "min_group_size": 0, "k_anonymity": 1}
ALL_MENTIONS = {"enabled": True, "categories": list(CATEGORIES)}


def _records(prefix: str, groups: list[str | None], field: str = "region") -> list[dict]:
    return [alpaca(f"{prefix} question {i}", f"answer {i}", **({field: g} if g is not None else {}))
            for i, g in enumerate(groups)]


def test_known_counts_give_shares_and_per_split_counts(run_stage):
    splits = {"train": _records("t", ["north"] * 4 + ["south"] * 2),
              "validation": _records("v", ["north", "south"]),
              "test": _records("x", ["south", "east"])}
    result, _ = run_stage("bias", audit_params(**{"fields": ["region"], **PARAMS}), splits)
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
    result, _ = run_stage("bias", audit_params(**{"fields": ["region"], **PARAMS}), splits)
    audit = result.summary["fields"]["region"]
    assert audit["status"] == "warn"
    assert audit["imbalance_ratio"] == 40
    assert audit["min_share"] == pytest.approx(1 / 41, abs=1e-6)
    assert len(audit["reasons"]) == 2
    assert "'tiny' (1, 2.4%)" in audit["reasons"][0] and "5.0%" in audit["reasons"][0]
    assert "40.0 times" in audit["reasons"][1]
    assert result.summary["status"] == "warn"


def test_missing_field_is_its_own_group(run_stage):
    splits = {"train": _records("t", ["a", "b", None, "a"]), "validation": _records("v", [None]), "test": []}
    result, _ = run_stage("bias", audit_params(**{"fields": ["region"], **PARAMS}), splits)
    groups = result.summary["fields"]["region"]["groups"]
    assert groups["(missing)"] == {"count": 2, "share": 0.4}
    assert result.summary["fields"]["region"]["by_split"]["validation"] == {"(missing)": 1}


@pytest.mark.parametrize("blank", ["", "   "])
def test_a_blank_value_is_missing_in_the_audit_as_in_the_split(run_stage, blank):
    records = [alpaca(f"q{i}", f"a{i}", region=value) for i, value in enumerate(["north", blank, None])]
    result, _ = run_stage("bias", audit_params(**{"fields": ["region"], **PARAMS}),
                          {"train": records, "validation": [], "test": []})
    assert result.summary["fields"]["region"]["groups"] == {
        "(missing)": {"count": 2, "share": 0.666667}, "north": {"count": 1, "share": 0.333333}}
    assert [group_value(record["meta"], "region") for record in records] == ["north", MISSING_GROUP, MISSING_GROUP]


def test_groups_smaller_than_k_are_counted_but_never_named(run_stage):
    customers = [f"Customer Name {i}" for i in range(12)]
    train = [alpaca(f"q{i}", f"a{i}", customer=name, region="north" if i % 2 else "south")
             for i, name in enumerate(customers)] + [alpaca(f"m{i}", "a", region="north") for i in range(3)]
    params = audit_params(fields=["customer", "region"], min_group_share=0.1, k_anonymity=5)
    result, _ = run_stage("bias", params, {"train": train, "validation": [], "test": []})
    summary = json.dumps(result.summary)
    assert not [name for name in customers if name in summary]
    audit = result.summary["fields"]["customer"]
    assert audit["suppressed_groups"] == 12 and audit["k_anonymity"] == 5 and "not named" in audit["note"]
    assert list(audit["groups"]) == ["(missing)"] + [f"(group of fewer than 5 records #{i})" for i in range(1, 13)]
    assert audit["groups"]["(missing)"]["count"] == 3  # the unnamed records are still counted and checked
    assert audit["status"] == "warn" and "#12" in " ".join(audit["reasons"])
    assert result.summary["fields"]["region"]["suppressed_groups"] == 0
    assert set(result.summary["fields"]["region"]["groups"]) == {"north", "south"}


def test_worst_field_sets_overall_status_and_non_strings_are_named(run_stage):
    train = [alpaca(f"q {i}", "a", region="north", member=i < 24) for i in range(25)]
    result, _ = run_stage("bias", audit_params(**{"fields": ["region", "member"], **PARAMS}),
                          {"train": train, "validation": [], "test": []})
    fields = result.summary["fields"]
    assert fields["region"]["status"] == "pass"
    assert fields["member"]["groups"] == {"true": {"count": 24, "share": 0.96}, "false": {"count": 1, "share": 0.04}}
    assert fields["member"]["status"] == "warn"
    assert result.summary["status"] == "warn"


def test_listing_is_capped_at_fifty_groups(run_stage):
    train = _records("t", [f"g{i:02d}" for i in range(60) for _ in range(2)] + ["g00"])
    result, _ = run_stage("bias", audit_params(**{"fields": ["region"], **PARAMS, "min_group_share": 0.0}),
                          {"train": train, "validation": [], "test": []})
    audit = result.summary["fields"]["region"]
    assert len(audit["groups"]) == 50 and audit["groups_not_listed"] == 10
    assert next(iter(audit["groups"])) == "g00"  # largest first
    assert audit["min_share"] == round(2 / 121, 6)


def test_no_records_warns_instead_of_failing(run_stage):
    result, _ = run_stage("bias", audit_params(**{"fields": ["region"], "mentions": ALL_MENTIONS, **PARAMS}),
                          {"train": [], "validation": [], "test": []})
    for audit in [result.summary["fields"]["region"], *result.summary["mentions"].values()]:
        assert audit["status"] == "warn"
        assert audit["reasons"] == ["no records to audit"]




def test_fail_thresholds_fail_with_reasons_naming_group_and_number(run_stage):
    splits = {"train": _records("t", ["big"] * 40 + ["mid"] * 2 + ["tiny"]), "validation": [], "test": []}
    params = {"fields": ["region"], **PARAMS, "fail_below_share": 0.03, "fail_above_ratio": 20}
    result, _ = run_stage("bias", audit_params(**params), splits)
    audit = result.summary["fields"]["region"]
    assert audit["status"] == "fail" and result.summary["status"] == "fail"
    # Fail reasons come first; 'tiny' fails on share, so it is not repeated among the warnings.
    assert audit["reasons"] == [
        "1 group(s) below the fail share of 3.0%: 'tiny' (1, 2.3%)",
        "largest group 'big' (40 records) is 40.0 times the smallest 'tiny' (1), above the fail ratio of 20",
        "1 group(s) below the minimum share of 5.0%: 'mid' (2, 4.7%)",
    ]


def test_fail_thresholds_not_crossed_leave_a_warning(run_stage):
    splits = {"train": _records("t", ["big"] * 40 + ["tiny"]), "validation": [], "test": []}
    params = {"fields": ["region"], **PARAMS, "fail_below_share": 0.01, "fail_above_ratio": 50}
    result, _ = run_stage("bias", audit_params(**params), splits)
    assert result.summary["fields"]["region"]["status"] == "warn"
    assert result.summary["status"] == "warn"


def test_min_group_size_warns_on_small_absolute_counts(run_stage):
    splits = {"train": _records("t", ["a"] * 30 + ["b"] * 25), "validation": [], "test": []}
    result, _ = run_stage("bias", audit_params(**{"fields": ["region"], **PARAMS, "min_group_size": 26}), splits)
    audit = result.summary["fields"]["region"]
    assert audit["status"] == "warn" and audit["min_count"] == 25
    assert audit["reasons"] == ["1 group(s) with fewer than 26 records: 'b' (25, 45.5%)"]
    result, _ = run_stage("bias", audit_params(**{"fields": ["region"], **PARAMS}), splits)  # 0: the check is off
    assert result.summary["fields"]["region"]["status"] == "pass"


# -- demographic mentions ------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("The theme of the other thesis", set()),  # 'he' inside words
    ("A human manager in the season of the person", set()),  # 'man', 'son'
    ("HE said so", {"male"}),
    ("she's here; the women's team", {"female"}),
    ("Her son and his mother", {"female", "male"}),
    ("a non-binary person, a non  binary friend", {"non-binary"}),
])
def test_gender_terms_match_whole_words_in_any_case(text, expected):
    assert groups_mentioned([text], "gender") == expected


def test_longest_term_wins_and_terms_do_not_join_across_texts():
    assert groups_mentioned(["Latin American food"], "nationality") == {"latin_america"}
    assert groups_mentioned(["South African wine"], "nationality") == {"sub_saharan_africa"}
    assert groups_mentioned(["Latin", "American"], "nationality") == {"north_america"}
    assert groups_mentioned(["Sikh and Buddhist temples", "a mosque"], "religion") == {"sikh", "buddhist", "muslim"}


def test_lexicon_categories_match_the_schema_and_terms_are_lowercase():
    schema_categories = load_schema()["properties"]["bias"]["properties"]["mentions"]["properties"]["categories"]
    assert list(CATEGORIES) == schema_categories["items"]["enum"] == schema_categories["default"]
    for category, groups in LEXICON.items():
        terms = [term for group_terms in groups.values() for term in group_terms]
        assert len(terms) == len(set(terms)), category  # each term belongs to one group
        assert all(term == term.lower() for term in terms)


def test_mentions_count_records_per_group_from_every_text_field(run_stage):
    splits = {"train": [alpaca("She asked her brother", "ok"),  # two groups in one record
                        alpaca("What is the weather?", "Sunny."),
                        alpaca("Summarise", "He liked it", "My mother wrote this")],  # output and input fields
              "validation": [alpaca("Tell the Muslim and Jewish communities", "done")],
              "test": [alpaca("Her mother called", "noted")]}
    result, _ = run_stage("bias", audit_params(**{"mentions": ALL_MENTIONS, **PARAMS}), splits)
    summary = result.summary
    assert summary["fields"] == {} and set(summary["mentions"]) == set(CATEGORIES)
    gender = summary["mentions"]["gender"]
    assert (gender["records"], gender["records_with_mention"], gender["share_with_mention"]) == (5, 3, 0.6)
    # Shares are of the records mentioning gender; the unmentioned group is listed with 0.
    assert gender["groups"] == {"female": {"count": 3, "share": 1.0}, "male": {"count": 2, "share": 0.666667},
                                "non-binary": {"count": 0, "share": 0.0}}
    assert gender["by_split"] == {"train": {"female": 2, "male": 2}, "validation": {}, "test": {"female": 1}}
    assert gender["imbalance_ratio"] == 1.5 and gender["status"] == "pass"
    religion = summary["mentions"]["religion"]
    assert {g: s["count"] for g, s in religion["groups"].items() if s["count"]} == {"jewish": 1, "muslim": 1}
    age = summary["mentions"]["age"]
    assert age["records_with_mention"] == 0 and age["imbalance_ratio"] is None and age["status"] == "pass"
    assert "brother" not in json.dumps(summary) and "weather" not in json.dumps(summary)  # counts, never text


def test_mention_imbalance_fails_and_sets_the_overall_status(run_stage):
    train = [alpaca(f"He asked question {i}", "ok", region="north") for i in range(30)]
    train.append(alpaca("She asked", "ok", region="north"))
    params = {"fields": ["region"], "mentions": {"enabled": True, "categories": ["gender"]}, **PARAMS,
              "fail_above_ratio": 20}
    result, _ = run_stage("bias", audit_params(**params), {"train": train, "validation": [], "test": []})
    assert set(result.summary["mentions"]) == {"gender"}
    assert result.summary["fields"]["region"]["status"] == "pass"
    gender = result.summary["mentions"]["gender"]
    assert gender["status"] == "fail" and result.summary["status"] == "fail"
    assert gender["reasons"] == [
        "largest group 'male' (30 records) is 30.0 times the smallest 'female' (1), above the fail ratio of 20",
        "1 group(s) below the minimum share of 5.0%: 'female' (1, 3.2%)"]


def test_disabled_mentions_are_not_audited(run_stage):
    params = {"fields": ["region"], "mentions": {"enabled": False, "categories": list(CATEGORIES)}, **PARAMS}
    result, _ = run_stage("bias", audit_params(**params), {"train": _records("t", ["a"]), "validation": [], "test": []})
    assert result.summary["mentions"] == {}


# -- the recipe: fields, mentions or both ----------------------------------------------------------
def _compile(tmp_path, bias_yaml: str):
    (tmp_path / "d.jsonl").write_text(json.dumps({"instruction": "a", "output": "b"}) + "\n")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(textwrap.dedent("""
        name: mini
        data:
          sources:
            - {path: d.jsonl, format: alpaca}
        """) + bias_yaml)
    return compile_recipe(recipe)


@pytest.mark.parametrize("bias_yaml", ["bias: {min_group_share: 0.1}\n", "bias: {mentions: {enabled: false}}\n"])
def test_bias_needs_fields_or_enabled_mentions(tmp_path, bias_yaml):
    with pytest.raises(RecipeInvalid) as info:
        _compile(tmp_path, bias_yaml)
    assert [str(e) for e in info.value.errors] == [f"{tmp_path / 'recipe.yaml'}:6:7: missing required key 'fields': "
                                                   "'fields' is required unless 'mentions' is enabled (at bias)"]


def test_mentions_alone_compile_with_all_categories_by_default(tmp_path):
    plan = _compile(tmp_path, "bias: {mentions: {}, fail_above_ratio: 30}\n")
    params = next(stage.params for stage in plan.stages if stage.name == "bias")
    assert params.fields == ()
    assert params.mention_categories == tuple(CATEGORIES)
    assert params.min_group_size == 0 and params.fail_above_ratio == 30 and params.fail_below_share is None
    assert params.k_anonymity == 5


# -- the report ------------------------------------------------------------------------------------
def test_report_shows_mention_categories_and_fail_status():
    bias = {"status": "fail",
            "fields": {"region": {"groups": {"north": {"count": 9, "share": 0.9}, "south": {"count": 1, "share": 0.1}},
                                  "min_count": 1, "min_share": 0.1, "imbalance_ratio": 9, "status": "pass",
                                  "reasons": []}},
            "mentions": {"gender": {"records": 40, "records_with_mention": 31, "share_with_mention": 0.775,
                                    "groups": {"male": {"count": 30, "share": 0.967742},
                                               "female": {"count": 1, "share": 0.032258},
                                               "non-binary": {"count": 0, "share": 0.0}},
                                    "min_count": 1, "min_share": 0.032258, "imbalance_ratio": 30, "status": "fail",
                                    "reasons": ["largest group 'male' (30 records) is 30.0 times the smallest "
                                                "'female' (1), above the fail ratio of 20"]}}}
    html = render_html({"bias": bias})
    assert '<h3>gender mentions <span class="badge badge-bad">fail</span></h3>' in html
    assert "Records mentioning any group: 31 of 40 (77.5%)" in html and "non-binary" in html
    assert "above the fail ratio of 20" in html
    markdown = render_markdown({"bias": bias})
    assert "**Bias:** fail · region pass · gender mentions fail (largest group 'male'" in markdown


def _plain_alternation(category: str):
    """The definition the lexicon's matcher must agree with: every term of the category in one alternation,
    longest first."""
    import re

    terms = sorted((term for terms in LEXICON[category].values() for term in terms), key=lambda t: (-len(t), t))
    return re.compile(r"\b(?:" + "|".join(r"\s+".join(map(re.escape, t.split())) for t in terms) + r")\b",
                      re.IGNORECASE)


@pytest.mark.parametrize("category", CATEGORIES)
def test_the_lexicon_matcher_finds_what_a_plain_alternation_of_its_terms_finds(category):
    import random

    from fttool.fairness.lexicon import _matcher

    rng = random.Random(category)
    terms = [term for terms in LEXICON[category].values() for term in terms]
    # Terms, their prefixes and extensions, and other words, in any case, joined by spaces, line breaks, hyphens or
    # nothing, so that longer and shorter terms compete at the same position.
    pieces = terms + [term[:-1] for term in terms] + [term + "s" for term in terms] + ["the", "non", "gen", "ZZ"]
    plain, (matcher, _) = _plain_alternation(category), _matcher(category)
    for _ in range(3000):
        words = [rng.choice((str.upper, str.title, str.lower))(rng.choice(pieces)) for _ in range(rng.randint(1, 9))]
        text = "".join(word + rng.choice((" ", "  ", "\n", "-", "", ". ")) for word in words)
        assert [(m.start(), m.group()) for m in matcher.finditer(text)] == \
            [(m.start(), m.group()) for m in plain.finditer(text)], text


@pytest.mark.slow  # spawns worker processes
def test_audit_is_byte_identical_with_worker_processes(tmp_path):
    from fttool.data.records import SPLITS, read_lines, write_jsonl
    from fttool.fairness.audit import audit_files
    from fttool.fairness.settings import BiasParams
    from fttool.pipeline.params import build

    texts = ["Her grandmother moved from Kenya", "A Sikh temple and a church", "The older adults", "Just numbers"]
    for index, split in enumerate(SPLITS):  # three splits of several batches, one group below k
        write_jsonl(tmp_path / f"{split}.jsonl",
                    [alpaca(f"{texts[i % 4]} {i}", "ok", region=["north", "south", None, f"x{i}"][i % 4 if i else 3])
                     for i in range(700 * (3 - index))])

    def summary(workers: int) -> str:
        params = build(BiasParams, {**audit_params(fields=["region"], mentions=ALL_MENTIONS, k_anonymity=2),
                                    "compute": {**LOCAL_ENGINE, "workers": workers}}, "bias")
        lines = ((split, read_lines(tmp_path / f"{split}.jsonl")) for split in SPLITS)
        return json.dumps(audit_files(lines, params, 4200, min_records_for_workers=0), sort_keys=True)

    one = summary(1)
    assert '"older"' in one and '"suppressed_groups": 1' in one
    assert summary(2) == one
