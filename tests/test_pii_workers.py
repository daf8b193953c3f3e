"""Where PII analysis runs: worker processes give the calling process's outcomes, each loads its engines once, and
the calling process imports none of presidio, spaCy or torch; deferred lemmas change no finding."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.pii import pii_params

from fttool.data.engines import available_cores
from fttool.pii import scrubber, workers
from fttool.pii.settings import PiiParams
from fttool.pipeline.params import build

TEXTS = ["Call Maria Lopez on 212-555-0199 or mail maria.lopez@example.org about the refund.",
         "Natalia sold clips to 48 of her friends in April.",
         "My social security number is 536-22-8191 and I live at 1600 Pennsylvania Avenue, Washington.",
         "Dear Mr. Tanaka, the parts ship next week. Kind regards,\nIngrid Bergström",
         "Explain how photosynthesis works.",
         "Charge card 4111 1111 1111 1111 and text +44 20 7946 0958 when done."] * 3


def _params(**settings) -> PiiParams:
    return build(PiiParams, pii_params(**settings), "pii")


def _loads(scrubbing) -> tuple[int, int]:
    """(this worker's pid, how many times it built engines): run in a worker by call_in_worker."""
    return os.getpid(), scrubber._engines.cache_info().misses


def test_workers_give_the_outcomes_of_one_process_and_load_their_engines_once(monkeypatch):
    monkeypatch.setattr(workers, "NLP_BATCH", 2)  # several tasks for each worker
    here = scrubber.TextScrubber(_params()).outcomes(TEXTS)
    with workers.analysis(_params(), workers.MIN_RECORDS_FOR_WORKERS) as analyser:  # workers: the cores available
        assert isinstance(analyser, workers.WorkerAnalysis)
        assert analyser.executor._max_workers == available_cores()
        assert analyser.start(TEXTS)() == here
        loads = [analyser.submit(workers.call_in_worker, _loads).result() for _ in range(8)]
    assert len({pid for pid, _ in loads}) <= available_cores() and os.getpid() not in {pid for pid, _ in loads}
    assert {count for _, count in loads} == {1}


def test_a_small_run_is_analysed_in_the_calling_process():
    with workers.analysis(_params(workers=2), workers.MIN_RECORDS_FOR_WORKERS - 1) as analyser:
        assert isinstance(analyser, workers.HereAnalysis)


CALLING_PROCESS = """
import json, sys
from fttool.pii.records import record_scrubbing
from fttool.pii.settings import PiiParams
from fttool.pipeline.params import build

if __name__ == "__main__":
    params = build(PiiParams, json.loads(sys.argv[1]), "pii")
    with record_scrubbing(params, 5000) as (scrub, tally):
        scrubbed = list(scrub(json.loads(sys.argv[2])))
    heavy = sorted(m for m in ("presidio_analyzer", "presidio_anonymizer", "spacy", "thinc", "torch", "transformers")
                   if m in sys.modules)
    print(json.dumps({"records": scrubbed, "imported": heavy}))
"""


def test_the_calling_process_imports_no_presidio_spacy_or_torch_when_workers_analyse(tmp_path):
    """Through the PII stage's record scrubbing, per-record type resolution included ("Georgia" is a person in one
    text of the record and a place in the other)."""
    script = tmp_path / "calling.py"
    script.write_text(CALLING_PROCESS, encoding="utf-8")
    root = Path(__file__).resolve().parents[1]
    records = [{"id": f"r{index}", "format": "alpaca", "instruction": first, "output": second}
               for index, (first, second) in enumerate(zip(TEXTS[:6:2], TEXTS[1:6:2]))]
    records.append({"id": "georgia", "format": "alpaca", "instruction": "Georgia said she would call back.",
                    "output": "Please send the parcel to Georgia."})
    done = subprocess.run([sys.executable, str(script), json.dumps(pii_params(workers=1)), json.dumps(records)],
                          capture_output=True, text=True, timeout=600, cwd=root,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["imported"] == []
    assert result["records"][0]["instruction"] == ("Call <PERSON> on <PHONE_NUMBER> or mail <EMAIL_ADDRESS> about "
                                                   "the refund.")
    georgia = result["records"][-1]
    assert "Georgia" not in georgia["instruction"] + georgia["output"]


def test_a_bad_entity_fails_the_first_analysis_in_the_workers_with_its_message():
    with pytest.raises(ValueError, match="pii.entities: no recognizer for NO_SUCH_TYPE"):
        with workers.analysis(_params(workers=1, entities=["PERSON", "NO_SUCH_TYPE"]), 5000) as analyser:
            analyser.start(TEXTS[:2])()


def test_a_missing_hash_key_fails_before_any_worker_starts(monkeypatch):
    monkeypatch.delenv("FTTOOL_PII_SALT", raising=False)
    with pytest.raises(ValueError, match="FTTOOL_PII_SALT, which is not set"):
        with workers.analysis(_params(workers=2, operators={"PERSON": {"type": "hash"}}), 5000):
            pass


def test_deferred_lemmas_change_no_finding():
    """The same analyzer with and without deferred tagging and lemmas gives the same findings, text by text and in
    spaCy batches: context words (SSN, address), a one-word place read as a person ("Natalia sold"), PERSON spans
    whose tags are read and given names that only their tags make names ("Tomasz lives") included."""
    from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine

    from fttool.pii.lemmas import defer_lemmas
    from fttool.pii.nlp_engines import build_nlp_engine
    from fttool.pii.recognizers import build_registry

    params = _params()

    def analyzer(deferred: bool) -> AnalyzerEngine:
        engine = build_nlp_engine(params.language, params.nlp_model, params.ner, ())
        if deferred:
            defer_lemmas(engine)
            assert not {"tok2vec", "tagger", "lemmatizer"} & set(engine.nlp["en"].pipe_names)
        return AnalyzerEngine(nlp_engine=engine, registry=build_registry("en", engine), supported_languages=["en"])

    texts = [*TEXTS[:6], "Tomasz lives near the station and Filip works there."]

    def findings(engine: AnalyzerEngine) -> list:
        one_by_one = [engine.analyze(text, language="en", entities=list(params.entities)) for text in texts]
        batched = BatchAnalyzerEngine(engine).analyze_iterator(texts, language="en", batch_size=4,
                                                                entities=list(params.entities))
        return [[sorted((r.entity_type, r.start, r.end, round(r.score, 6), r.recognition_metadata["recognizer_name"])
                        for r in results) for results in found] for found in (one_by_one, batched)]

    full = findings(analyzer(deferred=False))
    assert any(kind == "US_SSN" for found in full[0] for kind, *_ in found)
    assert ("PERSON", 0, 6, 0.6, "NameEvidence") in full[0][-1]  # Tomasz, read as a name by its tags
    assert findings(analyzer(deferred=True)) == full
