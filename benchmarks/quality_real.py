r"""Detection quality of every detector kind on real labelled series (NAB format), at defaults.

For each kind of ``aiops.detectors.KINDS`` (except ``threshold``, whose bounds are a metric's
own) and each data file of a NAB-format folder, exactly as a backfill would run it:

* the metric as Prometheus would store it: one sample per timestamp (the first of a repeated
  one), in time order;
* learn (``fit``) on the probation period, NAB's first 15% of the file (at most 750 rows),
  then score the rest in pieces of ``--piece`` rows, carrying the detector's state;
* group the points scored > 1 into incidents as the flows do (:func:`aiops.incidents.follow`,
  fed the same pieces, the default ``resolve_after``, the file's median step: a missing step
  is a normal point): each incident's onset is one alert.

Writes NAB-format outputs under ``--out`` (a temporary folder if not given):
``DIR/<kind>/<category>/<name>.csv`` (``timestamp,anomaly_score``: 1.0 at each incident
onset, 0 elsewhere) and ``DIR/<kind>-scores/<category>/<name>.csv`` (the score ``s`` mapped
to ``s / (1 + s)``: monotonic, in [0, 1), ``> 0.5`` exactly when ``s > 1``), so the reference
scorer can read both.

Prints per kind, scored with :func:`aiops.evaluation.nab_score` (docs/evaluation.md):

* NAB standard / reward-low-FP / reward-low-FN with incident onsets as the detections (what a
  user is alerted on), and the same with the threshold sweep over the continuous scores (one
  threshold per profile for the whole corpus, as NAB's board is made; the threshold is shown
  on the detector's own score scale);
* windows caught (of the scorable windows), false-alarm incidents per series-week (onsets
  outside every window / weeks of scored data summed over the files), the mean time to detect
  of the caught windows, from the window's start and from the labelled anomaly point (negative:
  before it), and the detection throughput (points learned and scored per second of ``fit`` +
  ``score``, one core).

    .venv/bin/python benchmarks/quality_real.py --nab-root ../shared/data/nab-subset \
        [--out DIR] [--kinds zscore,mad]
    # any NAB results folder:
    .venv/bin/python benchmarks/quality_real.py --nab-root ../shared/data/nab-subset --rescore DIR

``--rescore DIR`` scores an existing results folder (one ``timestamp,anomaly_score`` CSV per data
file, under ``<category>/``) at ``--threshold`` (default 0.5) and with the sweep, nothing else:
the agreement check against another scorer. A benchmark: it prints results and asserts nothing.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiops import detectors  # noqa: E402
from aiops.errors import InvalidInput  # noqa: E402
from aiops.evaluation import NAB_PROFILES, NabScore, NabSeries, nab_score  # noqa: E402
from aiops.incidents import DEFAULT_RESOLVE_AFTER, follow  # noqa: E402

WEEK = 7 * 86_400.0
SKIP_KINDS = ("threshold",)


@dataclass
class DataFile:
    rel: str  # <category>/<name>.csv
    stamps: list[str]  # the timestamp text of every row, as in the file
    ns: np.ndarray  # int64 UTC nanoseconds per row
    values: np.ndarray
    nab: NabSeries
    labels: list[int | None]  # per window: the row of its labelled anomaly point, if any

    @property
    def probation(self) -> int:
        return self.nab.probation


def _to_ns(texts: list[str]) -> np.ndarray:
    return (
        pd.to_datetime(pd.Series(texts), utc=True, format="mixed")
        .dt.tz_localize(None)
        .to_numpy()
        .astype("datetime64[ns]")
        .astype(np.int64)
    )


def load_corpus(root: Path) -> list[DataFile]:
    """Every file of ``labels/combined_windows.json``, windows as inclusive row ranges (a
    window edge is the first row with that timestamp, as NAB does)."""
    windows = json.loads((root / "labels" / "combined_windows.json").read_text())
    label_path = root / "labels" / "combined_labels.json"
    points = json.loads(label_path.read_text()) if label_path.exists() else {}
    files = []
    for rel in sorted(windows):
        with open(root / "data" / rel, newline="") as fh:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader)]
            rows = [r for r in reader if r]
        ti, vi = header.index("timestamp"), header.index("value")
        stamps = [r[ti] for r in rows]
        ns = _to_ns(stamps)
        first: dict[int, int] = {}
        for i, t in enumerate(ns.tolist()):
            first.setdefault(t, i)
        wins = []
        for a, b in windows[rel]:
            ta, tb = _to_ns([a, b]).tolist()
            wins.append((first[ta], first[tb]))
        wins.sort()
        label_rows = [first.get(t) for t in _to_ns(points[rel]).tolist()] if points.get(rel) else []
        per_window = [
            next((j for j in label_rows if j is not None and lo <= j <= hi), None)
            for lo, hi in wins
        ]
        values = np.array([float(r[vi]) for r in rows])
        files.append(
            DataFile(
                rel,
                stamps,
                ns,
                values,
                NabSeries.with_probation(len(rows), wins, name=rel),
                per_window,
            )
        )
    return files


@dataclass
class Run:
    """One kind on one file: the score of every row and the rows where incidents open."""

    scores: np.ndarray
    onsets: np.ndarray
    points: int
    seconds: float


def run_kind(kind: str, f: DataFile, piece: int, resolve_after: int | None = None) -> Run:
    # the metric as stored: the first sample of each timestamp, in time order
    uniq, first_row = np.unique(f.ns, return_index=True)
    series = pd.Series(f.values[first_row], index=pd.to_datetime(uniq, utc=True))
    split = f.ns[f.probation] if f.probation < len(f.ns) else np.iinfo(np.int64).max
    n_train = int(np.searchsorted(uniq, split, side="left"))
    det = detectors.create(kind)
    if resolve_after is None:
        resolve_after = int(det.params.get("resolve_after", DEFAULT_RESOLVE_AFTER))
    secs = uniq / 1e9
    step = float(np.median(np.diff(secs))) if len(secs) > 1 else None  # missing steps are normal
    state = None
    score_u = np.zeros(len(uniq))
    opened: list[float] = []
    seconds = 0.0
    t = time.perf_counter()
    if n_train:
        det.fit(series.iloc[:n_train])
    seconds += time.perf_counter() - t
    for a in range(n_train, len(uniq), piece):
        chunk = series.iloc[a : a + piece]
        t = time.perf_counter()
        s = det.score(chunk)["score"].to_numpy()
        seconds += time.perf_counter() - t
        score_u[a : a + len(s)] = s
        ts = secs[a : a + len(s)]
        changes, state = follow(
            state, ts, s, threshold=1.0, resolve_after=resolve_after, step=step, until=ts[-1]
        )
        opened.extend(c.opened_at for c in changes if c.opened)
    onset_u = np.searchsorted(
        secs, np.asarray(opened, dtype=np.float64)
    )  # an incident opens at a point
    rows_scores = score_u[np.searchsorted(uniq, f.ns)]  # a repeated timestamp shares its score
    return Run(rows_scores, np.sort(first_row[onset_u]), len(uniq), seconds)


def write_csv(path: Path, stamps: list[str], scores: np.ndarray, exact: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fh.write("timestamp,anomaly_score\n")
        if exact:
            fh.writelines(f"{t},{s!r}\n" for t, s in zip(stamps, scores.tolist(), strict=True))
        else:
            fh.writelines(
                f"{t},{'1.0' if s else '0'}\n" for t, s in zip(stamps, scores.tolist(), strict=True)
            )


_BELOW_HALF = float(np.nextafter(0.5, 0.0))


def squash(score: np.ndarray) -> np.ndarray:
    """``s / (1 + s)``: the score in [0, 1), monotonic, ``> 0.5`` exactly when ``s > 1``."""
    s = np.maximum(np.nan_to_num(score, nan=0.0), 0.0)
    out = s / (1.0 + s)
    out[s <= 1.0] = np.minimum(out[s <= 1.0], _BELOW_HALF)  # a score of exactly 1 is not an alert
    return out


def unsquash(t: float) -> float:
    return math.inf if t >= 1 else t / (1.0 - t)


@dataclass
class KindResult:
    kind: str
    onset: dict[str, NabScore]
    swept: dict[str, NabScore]
    windows: int
    caught: int
    false_onsets: int
    onsets: int
    series_weeks: float
    ttd_start_h: list[float]
    ttd_label_h: list[float]
    points: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "onsets_as_detections": {k: v.to_dict() for k, v in self.onset.items()},
            "threshold_sweep": {
                k: {**v.to_dict(), "detector_score_threshold": unsquash(v.threshold)}
                for k, v in self.swept.items()
            },
            "windows": self.windows,
            "windows_caught": self.caught,
            "incidents": self.onsets,
            "false_alarm_incidents": self.false_onsets,
            "series_weeks": self.series_weeks,
            "false_alarms_per_series_week": self.false_onsets / self.series_weeks,
            "mean_ttd_from_window_start_hours": _mean(self.ttd_start_h),
            "mean_ttd_from_label_hours": _mean(self.ttd_label_h),
            "points": self.points,
            "detect_seconds": self.seconds,
            "points_per_second": self.points / self.seconds if self.seconds else None,
        }


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def evaluate_kind(
    kind: str, files: list[DataFile], out: Path, piece: int, resolve_after: int | None = None
) -> KindResult:
    onset_scores, cont_scores = [], []
    ttd_start, ttd_label = [], []
    points, seconds, weeks = 0, 0.0, 0.0
    for f in files:
        run = run_kind(kind, f, piece, resolve_after)
        points += run.points
        seconds += run.seconds
        flags = np.zeros(len(f.ns))
        flags[run.onsets] = 1.0
        cont = squash(run.scores)
        cont[: f.probation] = 0.0
        onset_scores.append(flags)
        cont_scores.append(cont)
        cat, name = f.rel.split("/", 1)
        write_csv(out / kind / cat / name, f.stamps, flags, exact=False)
        write_csv(out / f"{kind}-scores" / cat / name, f.stamps, cont, exact=True)
        p = f.probation
        if p < len(f.ns):
            weeks += (f.ns[-1] - f.ns[p]) / 1e9 / WEEK
        scored = run.onsets[run.onsets >= p]
        for k in f.nab.scorable:
            lo, hi = f.nab.windows[k]
            inside = scored[(scored >= max(lo, p)) & (scored <= hi)]
            if len(inside):
                t = f.ns[inside[0]]
                ttd_start.append((t - f.ns[lo]) / 3.6e12)
                if f.labels[k] is not None:
                    ttd_label.append((t - f.ns[f.labels[k]]) / 3.6e12)
    series = [f.nab for f in files]
    onset = nab_score(series, onset_scores, threshold=0.5)
    swept = nab_score(series, cont_scores, threshold=None)
    std = onset["standard"]
    return KindResult(
        kind,
        onset,
        swept,
        std.windows,
        std.detected_windows,
        std.false_detections,
        std.detections,
        weeks,
        ttd_start,
        ttd_label,
        points,
        seconds,
    )


def read_results(results: Path, files: list[DataFile]) -> list[np.ndarray]:
    """Scores of a NAB results folder aligned to the data rows by timestamp (the k-th row of a
    repeated timestamp gets the k-th output row with it); a missing row or file scores 0."""
    out = []
    for f in files:
        path = results / f.rel
        scores = np.zeros(len(f.ns))
        if path.exists():
            with open(path, newline="") as fh:
                reader = csv.reader(fh)
                header = [h.strip() for h in next(reader)]
                rows = [r for r in reader if r]
            ti, si = header.index("timestamp"), header.index("anomaly_score")
            by_t: dict[int, list[float]] = defaultdict(list)
            for t, r in zip(_to_ns([r[ti] for r in rows]).tolist(), rows, strict=True):
                try:
                    v = float(r[si])
                except ValueError:
                    v = 0.0
                by_t[t].append(0.0 if v != v else v)
            seen: dict[int, int] = defaultdict(int)
            for i, t in enumerate(f.ns.tolist()):
                lst = by_t.get(t)
                if lst:
                    scores[i] = lst[min(seen[t], len(lst) - 1)]
                    seen[t] += 1
        else:
            print(f"warning: no output for {f.rel} (scored as no detections)", file=sys.stderr)
        out.append(scores)
    return out


def _fmt(v: float | None, pattern: str = ".1f") -> str:
    return "n/a" if v is None else format(v, pattern)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--nab-root", required=True, type=Path, help="folder with data/, labels/ (NAB layout)"
    )
    parser.add_argument(
        "--out", type=Path, help="where the NAB-format outputs go (default: a temporary folder)"
    )
    kinds_default = [k for k in detectors.KINDS if k not in SKIP_KINDS]
    parser.add_argument(
        "--kinds",
        default=",".join(kinds_default),
        help=f"comma-separated (default {','.join(kinds_default)})",
    )
    parser.add_argument("--piece", type=int, default=500, help="rows scored per call (default 500)")
    parser.add_argument(
        "--resolve-after",
        type=int,
        help=f"normal steps inside one incident (default {DEFAULT_RESOLVE_AFTER})",
    )
    parser.add_argument("--rescore", type=Path, help="only score this NAB results folder")
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="with --rescore: the fixed threshold (default 0.5)",
    )
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()

    kinds = [k for k in args.kinds.split(",") if k]
    for k in kinds:
        try:
            detectors.detector_class(k)  # an unknown kind stops before any work
        except InvalidInput as exc:
            raise SystemExit(f"quality_real: {exc.message}") from None
    t = time.perf_counter()
    files = load_corpus(args.nab_root)
    n_rows = sum(len(f.ns) for f in files)
    n_windows = sum(len(f.nab.windows) for f in files)
    print(
        f"{len(files)} files, {n_rows:,} rows, {n_windows} windows (loaded in "
        f"{time.perf_counter() - t:.1f}s)",
        file=sys.stderr,
    )
    profiles = [p.name for p in NAB_PROFILES]

    if args.rescore:
        scores = read_results(args.rescore, files)
        series = [f.nab for f in files]
        fixed = nab_score(series, scores, threshold=args.threshold)
        swept = nab_score(series, scores, threshold=None)
        print(
            f"{'profile':<20}{'at ' + format(args.threshold, 'g'):>10}{'swept':>10}"
            f"{'sweep threshold':>17}"
        )
        for name in profiles:
            thr = swept[name].threshold
            print(
                f"{name:<20}{_fmt(fixed[name].normalized, '.3f'):>10}"
                f"{_fmt(swept[name].normalized, '.3f'):>10}{_fmt(thr, '.6g'):>17}"
            )
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "fixed": {k: v.to_dict() for k, v in fixed.items()},
                        "swept": {k: v.to_dict() for k, v in swept.items()},
                    },
                    indent=1,
                )
            )
        return

    tmp = None
    out = args.out
    if out is None:
        tmp = tempfile.TemporaryDirectory()
        out = Path(tmp.name)
    results = []
    for kind in kinds:
        t = time.perf_counter()
        results.append(evaluate_kind(kind, files, out, args.piece, args.resolve_after))
        print(f"{kind}: {time.perf_counter() - t:.1f}s", file=sys.stderr)
    print(
        "\nNAB scores (0 = never fires, 100 = perfect); outputs in "
        f"{out if tmp is None else '(temporary)'}"
    )
    print(
        "onsets: incident onsets (score > 1, resolve_after "
        f"{DEFAULT_RESOLVE_AFTER if args.resolve_after is None else args.resolve_after}) as the "
        "detections; sweep: best threshold per profile on the continuous score"
    )
    head = (
        f"{'kind':<10}{'std':>7}{'lowFP':>7}{'lowFN':>7} "
        f"|{'std':>7}{'lowFP':>7}{'lowFN':>7}{'thr(std)':>10} "
        f"|{'caught':>8}{'incid.':>8}{'FA/s-wk':>9}{'TTD start':>10}{'TTD label':>10}{'Mpts/s':>8}"
    )
    print(f"{'':<10}{'-- onsets --':>21} |{'-- sweep --':>21}{'':>10} |")
    print(head)
    for r in results:
        o = [r.onset[p].normalized for p in profiles]
        s = [r.swept[p].normalized for p in profiles]
        thr = unsquash(r.swept["standard"].threshold)
        print(
            f"{r.kind:<10}"
            + "".join(f"{_fmt(v):>7}" for v in o)
            + " |"
            + "".join(f"{_fmt(v):>7}" for v in s)
            + f"{_fmt(thr, '.3g'):>10} |"
            + f"{f'{r.caught}/{r.windows}':>8}{r.onsets:>8}{r.false_onsets / r.series_weeks:>9.2f}"
            + f"{_fmt(_mean(r.ttd_start_h)) + 'h':>10}{_fmt(_mean(r.ttd_label_h)) + 'h':>10}"
            + f"{r.points / r.seconds / 1e6 if r.seconds else 0:>8.2f}"
        )
    total_weeks = results[0].series_weeks if results else 0.0
    print(
        f"\n{total_weeks:.1f} series-weeks scored; FA/s-wk = false-alarm incidents (onsets "
        "outside every window) per series-week; TTD = mean onset time of the caught windows "
        "minus the window start / the labelled point"
    )
    if args.json:
        args.json.write_text(json.dumps([r.to_dict() for r in results], indent=1))
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
