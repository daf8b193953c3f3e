"""What a transformers NER model (pii.ner) costs against spaCy's NER: whole-process time of the PII scrubber.

No real NER model can be fetched here, so the transformers side is a BERT-base-sized token-classification model
(12 layers, hidden 768, the size of dslim/bert-base-NER) with random weights and a WordPiece vocabulary trained on
the texts themselves: its predictions mean nothing (its classifier is biased to O so that it finds about nothing,
as a real model finds little in clean text), but each text costs the forward passes a real model of that size
costs. Recall is not measured here.

Each system scrubs the same texts (GSM8K's test questions and answers) in a fresh process with the recipe
schema's default `pii` settings (workers 1), only `pii.ner` differing; the whole process is timed (imports, model
load, analysis, anonymisation, second scan), runs alternated, best of `--runs`.

    .venv/bin/python bench/pii_ner_speed.py --records 500 --runs 2
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GSM8K_TEST = Path(__file__).resolve().parents[2] / "shared" / "data" / "external" / "gsm8k" / "test.jsonl"
LABELS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")


def _texts(records: int) -> list[str]:
    lines = GSM8K_TEST.read_text(encoding="utf-8").splitlines()[:records]
    return [text for line in lines for text in (json.loads(line)["question"], json.loads(line)["answer"])]


def build_model(directory: Path, texts: list[str]) -> None:
    """A randomly initialised BERT-base token classifier whose tokenizer is trained on `texts`."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertForTokenClassification, PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=False)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=30522, special_tokens=specials))
    tokenizer.post_processor = processors.BertProcessing(("[SEP]", tokenizer.token_to_id("[SEP]")),
                                                         ("[CLS]", tokenizer.token_to_id("[CLS]")))
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]", model_max_length=512)
    config = BertConfig(vocab_size=tokenizer.get_vocab_size(), num_labels=len(LABELS),
                        id2label=dict(enumerate(LABELS)), label2id={label: i for i, label in enumerate(LABELS)})
    torch.manual_seed(0)
    model = BertForTokenClassification(config)
    with torch.no_grad():
        model.classifier.bias[0] = 20.0  # O everywhere: the cost of the forward pass, not of random findings
    model.save_pretrained(directory)
    fast.save_pretrained(directory)


def child(engine: str, model: str, records: int) -> None:
    """Scrub the texts with the named engine: the process this script times."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from support.pii import pii_params

    from fttool.pii.nlp_engines import located
    from fttool.pii.scrubber import NLP_BATCH, TextScrubber
    from fttool.pii.settings import PiiParams
    from fttool.pipeline.params import build

    ner = {"engine": "transformers", "model": model} if engine == "transformers" else {}
    params = located(build(PiiParams, pii_params(workers=1, ner=ner), "pii"), Path.cwd())
    scrubber = TextScrubber(params)
    texts = _texts(records)
    changed = sum(bool(outcome.scrubbed) for start in range(0, len(texts), NLP_BATCH)
                  for outcome in scrubber.outcomes(texts[start:start + NLP_BATCH]))
    print(json.dumps({"texts": len(texts), "changed": changed}))


def timed(engine: str, model: Path, records: int) -> tuple[float, dict]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--child", engine, "--model", str(model),
                           "--records", str(records)], check=True, capture_output=True, text=True)
    return time.perf_counter() - started, json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=500, help="GSM8K test records (two texts each)")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--child", choices=["spacy", "transformers"])
    parser.add_argument("--model", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.child, str(args.model), args.records)
        return
    with tempfile.TemporaryDirectory() as scratch:
        model = Path(scratch) / "bert-base-ner"
        build_model(model, _texts(args.records))
        best: dict[str, tuple[float, dict]] = {}
        for run in range(args.runs):
            for engine in ("spacy", "transformers"):
                seconds, result = timed(engine, model, args.records)
                print(f"run {run + 1} {engine}: {seconds:.1f} s, {result}", flush=True)
                if engine not in best or seconds < best[engine][0]:
                    best[engine] = (seconds, result)
    texts = best["spacy"][1]["texts"]
    for engine, (seconds, result) in best.items():
        print(f"{engine}: best {seconds:.1f} s for {texts} texts ({texts / seconds:.1f} texts/s), "
              f"{result['changed']} changed")
    print(f"transformers / spacy time: {best['transformers'][0] / best['spacy'][0]:.2f}x")


if __name__ == "__main__":
    main()
