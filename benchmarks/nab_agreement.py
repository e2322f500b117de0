"""Does aiops.evaluation's NAB score agree with a reference NAB scorer on the same outputs?

For each NAB results folder given (one ``timestamp,anomaly_score`` CSV per data file, e.g. the
``--out`` folders of ``benchmarks/quality_real.py``), scores it with
:func:`aiops.evaluation.nab_score` and with the reference scorer (a separate script, run as a
subprocess with ``--json``), at a fixed threshold (``--threshold``, default 0.5) and with the
threshold sweep, for the three profiles, and prints both and the largest difference.

It also checks the time-based path ``aiops evaluate`` uses (:func:`aiops.evaluation.nab_evaluate`:
detections as times, windows as ``[start, end)``, a grid of the step): on every data file sampled
on a regular grid without repeated timestamps, the same raw score as the row-based scorer. Only
for folders of onsets (no two detections in adjacent rows: there, adjacent detections would be
one incident, by design).

    .venv/bin/python benchmarks/nab_agreement.py --nab-root ../shared/data/nab-subset \\
        --reference ../shared/tools/nab_score.py OUT/zscore OUT/zscore-scores ...
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quality_real import DataFile, load_corpus, read_results  # noqa: E402

from aiops.evaluation import NAB_PROFILES, nab_evaluate, nab_score, parse_labels_json  # noqa: E402


def reference(
    script: Path, results: Path, nab_root: Path, threshold: float | None
) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        cmd = [
            sys.executable,
            str(script),
            str(results),
            "--nab-root",
            str(nab_root),
            "--quiet",
            "--json",
            str(out),
        ]
        if threshold is not None:
            cmd += ["--threshold", str(threshold)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        data = json.loads(out.read_text())
    return {name: float(p["normalized_score"]) for name, p in data["profiles"].items()}


def time_path_difference(
    files: list[DataFile], scores: list[np.ndarray]
) -> tuple[int, float] | None:
    """Largest raw-score difference between nab_evaluate (times) and nab_score (rows) over the
    regularly sampled files, and how many there are; None when detections are adjacent."""
    regular = [
        (f, sc) for f, sc in zip(files, scores, strict=True) if len(np.unique(np.diff(f.ns))) == 1
    ]
    if any(np.any(np.diff(np.flatnonzero(sc >= 0.5)) == 1) for _, sc in regular):
        return None
    worst, n = 0.0, 0
    for f, sc in regular:
        ts = f.ns / 1e9
        step = float(ts[1] - ts[0])
        ts = ts - ts[0] % step  # on multiples of the step, as the product samples
        windows = [{"start": ts[a], "end": ts[b] + step} for a, b in f.nab.windows]
        labels = parse_labels_json(
            {"series": [{"labels": {"file": f.rel}, "windows": windows}]}, f.rel
        )
        detections = [({"file": f.rel}, ts[i]) for i in np.flatnonzero(sc >= 0.5)]
        timed = nab_evaluate(
            labels,
            detections,
            step=step,
            start=ts[0],
            end=ts[-1] + step,
            probation=0.15,
            resolve_after=0,
        )
        rows = nab_score([f.nab], [sc])
        worst = max(worst, *(abs(timed.profiles[p].raw - rows[p].raw) for p in rows))
        n += 1
    return n, worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="NAB results folders")
    parser.add_argument("--nab-root", required=True, type=Path)
    parser.add_argument("--reference", required=True, type=Path, help="the reference scorer script")
    parser.add_argument("--threshold", type=float, default=0.5)
    args = parser.parse_args()

    files = load_corpus(args.nab_root)
    series = [f.nab for f in files]
    names = [p.name for p in NAB_PROFILES]
    worst = 0.0
    timed: list[str] = []
    print("| results | ours at threshold | reference | ours, sweep | reference, sweep | max diff |")
    print("|---|---|---|---|---|---|")
    for results in args.results:
        scores = read_results(results, files)
        ours_f = nab_score(series, scores, threshold=args.threshold)
        ours_s = nab_score(series, scores, threshold=None)
        ref_f = reference(args.reference, results, args.nab_root, args.threshold)
        ref_s = reference(args.reference, results, args.nab_root, None)
        a = [ours_f[n].normalized or 0.0 for n in names]
        b = [ref_f[n] for n in names]
        c = [ours_s[n].normalized or 0.0 for n in names]
        d = [ref_s[n] for n in names]
        diff = max(abs(x - y) for x, y in zip(a + c, b + d, strict=True))
        worst = max(worst, diff)
        cells = [" / ".join(f"{v:.3f}" for v in vs) for vs in (a, b, c, d)]
        print(f"| {results.parent.name}/{results.name} | " + " | ".join(cells) + f" | {diff:.3f} |")
        check = time_path_difference(files, scores)
        if check is not None:
            timed.append(
                f"{results.parent.name}/{results.name}: {check[0]} files, largest raw difference "
                f"{check[1]:.1e}"
            )
    print(f"\nprofiles {' / '.join(names)}; largest difference {worst:.4f} (NAB points)")
    print("time path (nab_evaluate, as aiops evaluate) vs rows, regularly sampled files:")
    for line in timed:
        print("  " + line)


if __name__ == "__main__":
    main()
