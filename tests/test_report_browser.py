"""report.html as a reviewer sees it: rendered by headless Chromium from a small run with every check on."""
from __future__ import annotations

import json
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from support.report_run import small_run

from fttool.data.records import read_jsonl

SECTIONS = ("data", "pii", "bias", "augmentation", "training", "evaluation", "memorisation", "review", "policy",
            "stages", "environment", "lineage", "recipe")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return small_run(tmp_path_factory.getbasetemp() / "small-run", "browser")


def chromium(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.skip("chromium is not installed (Debian packages chromium and chromium-driver; "
                    "`bash .ci/setup --test` installs them)")
    # --no-sandbox: Chromium's sandbox refuses to start as root, as in CI containers.
    return subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
                          capture_output=True, text=True, timeout=timeout, check=True)


def png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB(A) bytes) of an 8-bit RGB or RGBA PNG, unfiltered."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    position, idat, header = 8, b"", None
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        body = data[position + 8:position + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        position += 12 + length
    width, height, depth, colour = header[:4]
    assert depth == 8 and colour in (2, 6), f"unexpected PNG format: depth {depth}, colour type {colour}"
    channels = 3 if colour == 2 else 4
    raw, stride, rows, previous = zlib.decompress(idat), width * channels, [], bytearray(width * channels)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, up_left = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                estimate = left + up - up_left
                pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - up_left)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else up_left)) & 0xFF
        rows.append(bytes(line))
        previous = line
    return width, height, [bytes(row[i:i + 3]) for row in rows for i in range(0, stride, channels)]


@pytest.mark.slow
def test_report_renders_in_chromium_with_every_section_and_chart(run_dir, tmp_path):
    page = (run_dir / "report.html").as_uri()
    shot = tmp_path / "report.png"
    chromium("--window-size=800,1000", f"--screenshot={shot}", page)
    width, height, pixels = png_pixels(shot)
    assert (width, height) == (800, 1000)
    white = sum(1 for pixel in pixels if pixel == b"\xff\xff\xff")
    colours = len(set(pixels))
    assert white < 0.97 * len(pixels) and colours > 50, (white / len(pixels), colours)

    dom = chromium("--dump-dom", page).stdout
    for section in SECTIONS:
        assert f'<section id="{section}">' in dom, section
    # The charts a reviewer reads: the record flow, the loss curve, per-group shares and canary exposure.
    for chart in ("Record flow", "Training loss by step", "Canary exposure in bits"):
        assert f'aria-label="{chart}' in dom, chart
    assert dom.count('class="share"') >= 2  # one bar per region group of the bias audit
    assert 'aria-label="token_f1 by region"' in dom  # base and tuned bars per group (fairness)
    assert "<polyline" in dom  # the loss curve has points
    assert "Policy <code>regulated</code>" in dom
    assert "No human review imported" in dom


@pytest.mark.slow
def test_report_json_has_every_section(run_dir):
    report = json.loads((run_dir / "report.json").read_text())
    assert set(report) >= {"run", "recipe", "environment", "data", "pii", "bias", "augmentation", "training",
                           "privacy", "evaluation", "fairness", "memorisation", "lineage", "policy", "signoff",
                           "review"}
    environment = report["environment"]
    assert environment["packages"]["torch"] and environment["cpu_count"] >= 1 and environment["memory_bytes"] > 0
    assert isinstance(environment["gpus"], list) and environment["recipe_git"] is None  # a temporary directory
    assert report["signoff"] is None and report["review"] is None
    assert report["policy"]["evaluated"] and report["policy"]["policy"] == "regulated"
    outcomes = {rule["id"]: rule["status"] for rule in report["policy"]["rules"]}
    assert outcomes["MEM-101"] == "passed" and outcomes["LIN-001"] == "passed"
    assert outcomes["PII-101"] == "failed"  # the recipe has no pii section, so nothing shows the data is clean
    # Canaries are in the final train file only.
    sources = {split: [r["source"] for r in read_jsonl(run_dir / "data" / f"{split}.jsonl")]
               for split in ("train", "validation", "test")}
    assert sources["train"].count("canary") == report["data"]["counts"]["canaries"] == 6
    assert "canary" not in sources["validation"] + sources["test"]


def test_environment_names_the_commit_of_the_recipe_repository(tmp_path):
    from fttool.report.build import recipe_git

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=tmp_path,
                       check=True, capture_output=True)

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("name: x\n")
    assert recipe_git(recipe) is None
    git("init", "-q")
    git("add", "recipe.yaml")
    git("commit", "-q", "-m", "recipe")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    assert recipe_git(recipe) == {"commit": head, "uncommitted_changes": False}
    recipe.write_text("name: y\n")
    assert recipe_git(recipe) == {"commit": head, "uncommitted_changes": True}


@pytest.mark.slow
def test_the_pdf_print_holds_what_the_screen_shows(run_dir, tmp_path):
    """Print to PDF as a reviewer filing the report would; the text must hold every digest, the lineage, the MLflow
    files behind their collapsed group and the resolved recipe, none of it clipped."""
    pdftotext = shutil.which("pdftotext")
    if pdftotext is None:
        pytest.skip("pdftotext is not installed (Debian package poppler-utils; `bash .ci/setup --test` installs it)")
    pdf = tmp_path / "report.pdf"
    chromium("--no-pdf-header-footer", f"--print-to-pdf={pdf}", (run_dir / "report.html").as_uri())
    # -raw keeps the order Chromium drew the text in, so a cell's wrapped lines stay together.
    text = subprocess.run([pdftotext, "-raw", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    # Long values wrap inside their cells; joined up again, each must be there whole.
    joined = "".join(text.split())
    report = json.loads((run_dir / "report.json").read_text())
    assert "Verdict:FAIL" in joined and "PII-101failed" in joined
    for artifact in report["lineage"]["artifacts"]:
        assert artifact["sha256"] in joined and artifact["path"].replace(" ", "") in joined, artifact["path"]
        assert all(parent.replace(" ", "") in joined for parent in artifact["parents"]), artifact["parents"]
    mlflow = [a["path"] for a in report["lineage"]["artifacts"] if a["path"].startswith("mlruns/")]
    assert mlflow, "the small run tracks to the run's own MLflow store"
    for stage in report["stages"]:
        assert stage["fingerprint"] in joined, stage["name"]
    assert '"max_seq_length":96' in joined and '"target_modules":["q_proj","v_proj"]' in joined  # the recipe
    assert "Fine-tuningauditreport:browser" in joined and "Environment" in text
