"""Template quality on real labelled logs: grouping accuracy (GA) per system.

    python benchmarks/logs_quality.py --loghub-root PATH [--out DIR] [--systems A,B]

``PATH`` is a folder in the Loghub-2k layout with corrected ground truth:
``corrected/<System>/<System>_2k.log`` (raw lines) and
``corrected/<System>/<System>_2k.log_structured_corrected.csv`` (``LineId``, ``Content``,
``EventTemplate``...). Every system found there is scored twice:

* **message only**: the ``Content`` column (the message after the header, the usual way
  parsers are compared) fed to ``TemplateMiner().add_many`` at its defaults;
* **whole lines**: the raw ``_2k.log`` lines, header included, through the same code path as
  ``aiops analyze-logs FILE`` (``from_lines`` then the analyzer), which is what users get.

GA (Zhu et al., ICSE-SEIP 2019): a line is right when the set of lines grouped with it is
exactly the set of lines sharing its true template (``EventTemplate``). The script prints, per
system and on average, GA for both inputs, the number of templates found against the truth,
and lines/s. ``--out DIR`` writes ``DIR/content/<System>.csv`` and ``DIR/lines/<System>.csv``
(``LineId,cluster_id``) so that other scorers can check the figures.

One default configuration for all systems: nothing here is tuned per file.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aiops.logs.templates import TemplateMiner  # noqa: E402


def grouping_accuracy(truth: list[str], predicted: list[str]) -> float:
    """Share of lines whose predicted group is exactly their true group."""
    true_groups: dict[str, list[int]] = defaultdict(list)
    for i, key in enumerate(truth):
        true_groups[key].append(i)
    pred_groups: dict[str, set[int]] = defaultdict(set)
    for i, key in enumerate(predicted):
        pred_groups[key].add(i)
    right = 0
    for members in true_groups.values():
        pred = predicted[members[0]]
        if pred_groups[pred] == set(members):
            right += len(members)
    return right / len(truth) if truth else 0.0


def read_system(folder: Path, name: str) -> tuple[list[str], list[str], list[str], list[str]]:
    """(line ids, contents, true templates, raw lines) of one system, ground-truth rows only."""
    structured = folder / f"{name}_2k.log_structured_corrected.csv"
    raw = (folder / f"{name}_2k.log").read_text(encoding="utf-8", errors="replace").splitlines()
    ids, contents, truth = [], [], []
    with structured.open(newline="", encoding="utf-8", errors="replace") as fh:
        for row in csv.DictReader(fh):
            template = (row.get("EventTemplate") or "").strip()
            if not template:
                continue
            ids.append(row["LineId"].strip())
            contents.append(row.get("Content") or "")
            truth.append(template)
    return ids, contents, truth, raw


def message_ids(contents: list[str]) -> list[str]:
    return TemplateMiner().add_many(contents)


def line_ids(raw: list[str]) -> list[str]:
    """Template id per raw line, through the path of ``aiops analyze-logs FILE``."""
    from aiops.logs.analysis import line_template_ids
    from aiops.logs.frame import from_lines

    frame = from_lines(raw)
    return list(line_template_ids(frame))


def write_ids(path: Path, line_ids_: list[str], clusters: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["LineId", "cluster_id"])
        w.writerows(zip(line_ids_, clusters))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--loghub-root", required=True, type=Path)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--systems", default="", help="comma-separated subset (default: all found)")
    ap.add_argument("--repeat", type=int, default=3, help="timing repeats (best is printed)")
    args = ap.parse_args(argv)
    base = args.loghub_root / "corrected"
    if not base.is_dir():
        base = args.loghub_root
    names = sorted(p.name for p in base.iterdir() if (p / f"{p.name}_2k.log").is_file())
    if args.systems:
        wanted = {s.strip() for s in args.systems.split(",") if s.strip()}
        names = [n for n in names if n in wanted]
    if not names:
        print(f"no <System>/<System>_2k.log found under {base}", file=sys.stderr)
        return 2
    head = f"{'system':<12} {'GA msg':>7} {'GA line':>7} {'true':>5} {'msg':>5} {'line':>5}"
    print(head + f" {'msg l/s':>9} {'line l/s':>9}")
    sums = [0.0, 0.0]
    for name in names:
        ids, contents, truth, raw = read_system(base / name, name)
        by_id = {lid: i for i, lid in enumerate(ids)}
        t_msg = t_line = float("inf")
        for _ in range(max(1, args.repeat)):
            t0 = time.perf_counter()
            msg = message_ids(contents)
            t_msg = min(t_msg, time.perf_counter() - t0)
            t0 = time.perf_counter()
            per_line = line_ids(raw)
            t_line = min(t_line, time.perf_counter() - t0)
        # raw line k is LineId k+1; score only the ground-truth rows
        line_pred = [per_line[int(lid) - 1] if int(lid) <= len(per_line) else "" for lid in ids]
        ga_msg = grouping_accuracy(truth, msg)
        ga_line = grouping_accuracy(truth, line_pred)
        sums[0] += ga_msg
        sums[1] += ga_line
        print(
            f"{name:<12} {ga_msg:7.3f} {ga_line:7.3f} {len(set(truth)):5d} {len(set(msg)):5d}"
            f" {len(set(line_pred)):5d} {len(contents) / t_msg:9.0f} {len(raw) / t_line:9.0f}"
        )
        if args.out is not None:
            write_ids(args.out / "content" / f"{name}.csv", ids, msg)
            write_ids(args.out / "lines" / f"{name}.csv", ids, line_pred)
        del by_id
    n = len(names)
    print(f"{'mean':<12} {sums[0] / n:7.3f} {sums[1] / n:7.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
