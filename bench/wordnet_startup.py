"""Time to a usable WordNet: nltk's own reader against fttool's (no identity OMW map, index kept in the cache).

Synonym augmentation needs WordNet in every run that uses it, so its start-up is a fixed cost of those runs.
This times, in fresh processes and alternating so that drift in machine load hits both alike, after one untimed
warm-up of each (which also fills fttool's index cache, as a first run on a machine would):

    baseline:  nltk.corpus.wordnet over the same offline corpus, ensure_loaded() (what fttool did before)
    fttool:    fttool.augment.wordnet_files.wordnet_reader()

Both processes import nltk first; only the reader's construction is timed. The result goes into the section
"## WordNet start-up" of docs/benchmarks.md.

    python bench/wordnet_startup.py
    python bench/wordnet_startup.py --runs 9 --no-write
"""
from __future__ import annotations

import argparse
import datetime as dt
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
from benchmarks_doc import cpu_model, write_section  # noqa: E402 (bench/ is on sys.path when run as a script)

SECTION = "## WordNet start-up"
PREAMBLE = "import time, warnings, nltk\nwarnings.simplefilter('ignore')\n"
BASELINE = PREAMBLE + textwrap.dedent("""
    from fttool.augment.wordnet_files import nltk_data_dir
    nltk.data.path.insert(0, str(nltk_data_dir()))
    from nltk.corpus import wordnet
    start = time.perf_counter()
    wordnet.ensure_loaded()
    assert wordnet.synsets("house")
    print(time.perf_counter() - start)
""")
FTTOOL = PREAMBLE + textwrap.dedent("""
    from fttool.augment.wordnet_files import wordnet_reader
    start = time.perf_counter()
    reader = wordnet_reader()
    assert reader.synsets("house")
    print(time.perf_counter() - start)
""")


def timed(code: str) -> float:
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return float(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    timed(BASELINE), timed(FTTOOL)  # warm-up: page cache, and fttool's index cache
    baseline, fttool = [], []
    for _ in range(args.runs):
        baseline.append(timed(BASELINE))
        fttool.append(timed(FTTOOL))
    b, f = statistics.median(baseline), statistics.median(fttool)
    text = (f"{SECTION}\n\n"
            f"`python bench/wordnet_startup.py --runs {args.runs}` on {dt.date.today()} ({cpu_model()}, "
            "2 cores, shared with other work): seconds to a usable WordNet reader, median of the alternated runs.\n\n"
            "| reader | median s | runs |\n|---|---|---|\n"
            f"| nltk's wordnet, ensure_loaded() (baseline) | {b:.2f} | {', '.join(f'{x:.2f}' for x in baseline)} |\n"
            f"| fttool wordnet_reader() | {f:.2f} | {', '.join(f'{x:.2f}' for x in fttool)} |\n\n"
            f"fttool takes {f / b:.2f}x the baseline's time. nltk's reader spends most of its start-up mapping its "
            "corpus onto the loaded WordNet version for multilingual lookups; here both are WordNet 3.0, so fttool "
            "skips that identity map, and it keeps the parsed index under the corpus files' sha256.\n")
    print(text)
    if not args.no_write:
        write_section(text)


if __name__ == "__main__":
    main()
