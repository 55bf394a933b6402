"""Speed benchmark: the same gating work done by mlops-gates and by the tools a user would pick instead.

Seeded synthetic data: a binary task, 20 numeric and 5 categorical features, two sensitive attributes with 4
and 3 groups, candidate and baseline scores. Times, side by side in one run: `evaluate` (integrity, accuracy,
fairness, paired regression, 2,000 bootstrap replicates); fairlearn's MetricFrame computing the same per-group
rates plus demographic-parity and equalized-odds differences (numbers checked against ours); and the floor,
reading every column the gates need from Parquet with pyarrow, in record batches; deepchecks' data_integrity suite in the environment
`make test` creates (up to 100k rows); and Evidently's DataDriftPreset (reference against current, its own
environment, `make bench` creates it) beside our integrity gate's drift checks on the same 25 columns.
Usage: make bench, or python bench/speed.py [--sizes 10000 100000 1000000 10000000 100000000] [--out bench/RESULTS.md]\nWrites RESULTS.md and speed.svg (the scaling chart) beside it.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

sys.path.insert(0, str(Path(__file__).parent))
import chart  # noqa: E402

POLICY = {
    "version": 1,
    "task": "binary",
    "positive_label": 1,
    "data": {"eval": {"path": "eval.parquet"}},
    "columns": {
        "label": "y",
        "candidate": {"score": "cand"},
        "baseline": {"score": "base"},
        "sensitive": ["s1", "s2"],
        "features": [f"x{i}" for i in range(20)] + [f"k{i}" for i in range(5)],
    },
    "settings": {"bootstrap": {"replicates": 2000, "seed": 0}},
    "gates": [
        {"type": "integrity", "max_missing_rate": 0.01, "max_duplicate_rate": 0.01},
        {
            "type": "accuracy",
            "metrics": [
                {"metric": "accuracy", "op": ">=", "value": 0.6},
                {"metric": "roc_auc", "op": ">=", "value": 0.6},
            ],
        },
        {
            "type": "fairness",
            "intersections": True,
            "metrics": [
                {"metric": "demographic_parity_difference", "op": "<=", "value": 0.2},
                {"metric": "equalized_odds_difference", "op": "<=", "value": 0.2},
            ],
        },
        {
            "type": "regression",
            "metrics": [
                {"metric": "roc_auc", "margin": {"absolute": 0.01}},
                {"metric": "accuracy", "margin": {"absolute": 0.01}},
            ],
            "negative_flips": {"max_rate": 0.1},
        },
    ],
}


FEATURES = [f"x{i}" for i in range(20)] + [f"k{i}" for i in range(5)]
# drift alone, on every feature against a reference set of the same size: what Evidently's preset does
DRIFT = {
    **POLICY,
    "data": {"eval": {"path": "eval.parquet"}, "reference": {"path": "ref.parquet"}},
    "gates": [{"type": "integrity", "drift": {"features": FEATURES, "max_psi": 0.2, "max_ks": 0.1}}],
}

# integrity alone, with the checks deepchecks' data_integrity suite makes that ours has (missing values,
# duplicates, conflicting labels, class balance): the same work as that suite
INTEGRITY = {
    **POLICY,
    "gates": [
        {
            "type": "integrity",
            "max_missing_rate": 0.01,
            "max_duplicate_rate": 0.01,
            "max_conflicting_label_rate": 0.01,
            "min_class_rate": 0.05,
        }
    ],
}


def features(n: int, rng: np.random.Generator, shift: float = 0.0) -> dict[str, np.ndarray]:
    cols = {f"x{i}": rng.normal(loc=shift if i < 3 else 0.0, size=n) for i in range(20)}
    return cols | {f"k{i}": rng.choice(["a", "b", "c", "d", "e"], n) for i in range(5)}


CHUNK = 1_000_000  # rows generated and written at a time: 100M rows never sit in memory


def _eval_chunk(n: int, rng: np.random.Generator) -> pa.Table:
    cols = features(n, rng)
    cols["s1"] = rng.choice(["g1", "g2", "g3", "g4"], n)
    cols["s2"] = rng.choice(["h1", "h2", "h3"], n)
    logit = cols["x0"] - 0.5 * cols["x1"] + 0.3 * (cols["s1"] == "g2")
    cols["y"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    cols["cand"] = 1 / (1 + np.exp(-(logit + rng.normal(0, 0.8, n))))
    cols["base"] = 1 / (1 + np.exp(-(logit + rng.normal(0, 1.0, n))))
    return pa.table(cols)


def _write(path: Path, n: int, seed: int, chunk) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    with pq.ParquetWriter(path, chunk(1, np.random.default_rng(0)).schema) as w:
        for start in range(0, n, CHUNK):
            w.write_table(chunk(min(CHUNK, n - start), rng))


def make(n: int, folder: Path) -> Path:
    path = folder / "eval.parquet"
    _write(path, n, n, _eval_chunk)
    _write(folder / "ref.parquet", n, n + 1, lambda k, rng: pa.table(features(k, rng, shift=0.1)))
    (folder / "gates.yml").write_text(yaml.safe_dump(POLICY))
    (folder / "drift.yml").write_text(yaml.safe_dump(DRIFT))
    (folder / "integrity.yml").write_text(yaml.safe_dump(INTEGRITY))
    few = {**POLICY, "settings": {"bootstrap": {"replicates": 100, "seed": 0}}}
    (folder / "gates-100.yml").write_text(yaml.safe_dump(few))
    return path


def timed(code: str, folder: Path, python: str = sys.executable) -> tuple[float, float]:
    """Run `code` in a fresh interpreter; wall seconds and peak RSS (MB) of that process alone."""
    t = time.perf_counter()
    proc = subprocess.Popen([python, "-c", code], cwd=folder)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:  # a step that raised is not timed as if it had done the work
        raise SystemExit(f"benchmark step failed: {code[:80]}")
    return time.perf_counter() - t, usage.ru_maxrss / 1024


EVALUATE = "import mlops_gates; mlops_gates.run('gates.yml', 'out')"
EVALUATE_FEW = "import mlops_gates; mlops_gates.run('gates-100.yml', 'out-100')"
HELP = "import io, sys; sys.stdout = io.StringIO(); sys.argv = ['mlops-gates', '--help']; from mlops_gates.cli import main; main()"
EVALUATE_ARROW = "import mlops_gates; mlops_gates.run('gates.yml', 'out', engine='arrow')"
DRIFT_RUN = "import mlops_gates; mlops_gates.run('drift.yml', 'out-drift')"
INTEGRITY_RUN = "import mlops_gates; mlops_gates.run('integrity.yml', 'out-integrity')"
# the floor: every column the gates need (label, scores, groups, the integrity gate's 25 features), streamed in
# record batches as our pass reads them (whole, 100M rows would not fit in memory)
NEEDED = ["y", "cand", "base", "s1", "s2", *FEATURES]
READ = f"""
import pyarrow.parquet as pq
for b in pq.ParquetFile('eval.parquet').iter_batches(batch_size=65536, columns={NEEDED!r}):
    pass
"""
FAIRLEARN = """
import pandas as pd, pyarrow.parquet as pq
from fairlearn.metrics import MetricFrame, selection_rate, true_positive_rate, false_positive_rate, demographic_parity_difference, equalized_odds_difference
from sklearn.metrics import accuracy_score, precision_score, roc_auc_score
t = pq.read_table('eval.parquet', columns=['y','cand','base','s1','s2']).to_pandas()
found = {}
for side in ('cand', 'base'):
    pred = (t[side] >= 0.5).astype(int)
    sf = t[['s1', 's2']]
    MetricFrame(metrics={'selection_rate': selection_rate, 'tpr': true_positive_rate, 'fpr': false_positive_rate,
                         'accuracy': accuracy_score, 'precision': precision_score}, y_true=t['y'], y_pred=pred, sensitive_features=sf)
    for f in ('s1', 's2'):
        found[f'{side} demographic_parity_difference {f}'] = demographic_parity_difference(t['y'], pred, sensitive_features=t[f])
        found[f'{side} equalized_odds_difference {f}'] = equalized_odds_difference(t['y'], pred, sensitive_features=t[f])
    found[f'{side} accuracy overall'] = accuracy_score(t['y'], pred)
    found[f'{side} roc_auc overall'] = roc_auc_score(t['y'], t[side])
import json; json.dump({k: float(v) for k, v in found.items()}, open('fairlearn.json', 'w'))
"""
AUC_TOLERANCE = 1e-3  # ours is computed from 200 score bins (docs/decisions.md: the binning bound)


def agreement(folder: Path) -> float:
    """The largest gap between fairlearn's / scikit-learn's numbers and the candidate's in our record; fails the
    benchmark when they disagree (AUC within the binning tolerance, every other number to 1e-9)."""
    import json

    theirs = json.loads((folder / "fairlearn.json").read_text())
    ours = {}
    for gate in json.loads((folder / "out" / "decision.json").read_text())["gates"]:
        for m in gate["metrics"]:
            ours[f"cand {m['metric']} {m['scope']}"] = m["value"]
    worst = 0.0
    for key, value in theirs.items():
        if key.startswith("cand "):
            gap = abs(ours[key] - value)
            if gap > (AUC_TOLERANCE if "roc_auc" in key else 1e-9):
                raise SystemExit(
                    f"fairlearn/scikit-learn and mlops-gates disagree on {key}: {value} vs {ours[key]}"
                )
            worst = max(worst, gap) if "roc_auc" not in key else worst
    return worst


# deepchecks' data_integrity suite on the same columns, in its own environment (numpy 1); its default conditions
DEEPCHECKS = """
import warnings; warnings.filterwarnings('ignore')
import pandas as pd
from deepchecks.tabular import Dataset
from deepchecks.tabular.suites import data_integrity
t = pd.read_parquet('eval.parquet', columns=[f'x{i}' for i in range(20)] + [f'k{i}' for i in range(5)] + ['y'])
data_integrity().run(Dataset(t, label='y', cat_features=[f'k{i}' for i in range(5)]))
"""
DEEPCHECKS_ENV = Path(__file__).resolve().parents[1] / ".cache" / "deepchecks" / "bin" / "python"
DEEPCHECKS_MAX_ROWS = 100_000  # 57 s at 1M rows (NOTES): measured up to here

# Evidently's data drift preset (its default tests per column), reference against current, in its own
# environment (Evidently 0.7.23 does not import with pandas 3)
EVIDENTLY = f"""
import warnings; warnings.filterwarnings('ignore')
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
cols = {FEATURES!r}
Report([DataDriftPreset()]).run(pd.read_parquet('eval.parquet', columns=cols), pd.read_parquet('ref.parquet', columns=cols))
"""
EVIDENTLY_ENV = Path(__file__).resolve().parents[1] / ".cache" / "evidently" / "bin" / "python"
PEERS_MAX_ROWS = 1_000_000  # fairlearn takes 200 s at 1M rows; above this only ours and the floor run
HUGE = 100_000_000  # from here one run of each (minutes apiece) and no variants; ~35 GB of data on disk

CHART = [
    "read (floor)",
    "mlops-gates evaluate",
    "mlops-gates drift only",
    "mlops-gates integrity only",
    "fairlearn MetricFrame",
    "Evidently DataDriftPreset",
    "deepchecks data_integrity",
]

# peer -> the mlops-gates run that does the same work (or more)
VERSUS = {
    "fairlearn MetricFrame": "mlops-gates evaluate",
    "deepchecks data_integrity": "mlops-gates integrity only",
    "Evidently DataDriftPreset": "mlops-gates drift only",
}


def targets(res: dict[int, dict[str, tuple[float, float]]]) -> list[str]:
    """The scale issues' targets, as measured in this run (those whose sizes were run)."""

    def wall(n: int, name: str) -> float:
        return res[n][name][0]

    rows = []
    M, K = 1_000_000, 100_000
    for n in sorted(res):
        if n >= M:
            r = wall(n, "mlops-gates evaluate") / wall(n, "read (floor)")
            rows.append(
                (
                    f"{n:,} rows, all gates with intervals: at most 3x reading every column they need",
                    f"{r:.1f}x",
                    r <= 3,
                )
            )
            d = wall(n, "mlops-gates drift only") / wall(n, "mlops-gates evaluate")
            rows.append(
                (f"{n:,} rows: drift no slower than the whole evaluate", f"{d:.2f}x evaluate's time", d <= 1)
            )
    if M in res:
        extra = wall(M, "mlops-gates evaluate") / wall(M, "mlops-gates evaluate, 100 replicates") - 1
        rows.append(
            ("1M rows: 2,000 replicates add at most 10% (against 100)", f"{extra:+.0%}", extra <= 0.10)
        )
        for peer, ours, factor in (
            ("fairlearn MetricFrame", "mlops-gates evaluate", 50),
            ("Evidently DataDriftPreset", "mlops-gates drift only", 20),
        ):
            if peer in res[M]:
                r = wall(M, peer) / wall(M, ours)
                rows.append((f"1M rows: at least {factor}x faster than {peer}", f"{r:.1f}x", r >= factor))
    if K in res and "deepchecks data_integrity" in res[K]:
        r = wall(K, "deepchecks data_integrity") / wall(K, "mlops-gates integrity only")
        whole = wall(K, "deepchecks data_integrity") / wall(K, "mlops-gates evaluate")
        rows.append(
            (
                "100k rows: at least 20x faster than deepchecks' data_integrity",
                f"{r:.1f}x (the integrity gate; {whole:.1f}x for all four gates)",
                r >= 20,
            )
        )
    first = min(res)
    if "mlops-gates --help" in res[first]:
        t = wall(first, "mlops-gates --help")
        rows.append(("`mlops-gates --help` under 0.3 s", f"{t:.2f} s", t < 0.3))
    for n in (10_000_000, 100_000_000):
        if n in res:
            t, rss = res[n]["mlops-gates evaluate"]
            rows.append(
                (f"{n:,} rows gated with a peak RSS under 1 GB", f"{rss:.0f} MB, {t:.0f} s", rss < 1024)
            )
    out = [
        "## Targets (from the scale issues), as measured in this run",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    return out + [f"| {a} | {b} | {'yes' if ok else 'no'} |" for a, b, ok in rows]


def report(rows: list[tuple[int, dict[str, tuple[float, float]]]], args: argparse.Namespace) -> None:
    """RESULTS.md and the chart from what has been measured so far."""
    lines = [
        "# Speed: mlops-gates against the tools a user would pick instead",
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}. "
        f"Median of {args.repeat} runs of each peer and of {max(3, args.repeat)} of ours and the floor, each in a fresh "
        "process (imports included); peak RSS of that process. "
        f"Command: `python bench/speed.py {' '.join(sys.argv[1:])}`.",
        "",
        "| rows | tool | median wall (s) | peak RSS (MB) | vs read floor | it / mlops-gates (same work) |",
        "|---|---|---|---|---|---|",
    ]
    for n, res in rows:
        floor = res["read (floor)"][0]
        for name, (wall, rss) in res.items():
            ratio = wall / res[VERSUS[name]][0] if name in VERSUS else None
            lines.append(
                f"| {n:,} | {name} | {wall:.2f} | {rss:.0f} | {wall / floor:.1f}x | {'' if ratio is None else f'{ratio:.2f}x'} |"
            )
    lines += [
        "",
        "Process start-up and imports are inside every number. The last column compares each peer with our run",
        "that does the same work: fairlearn's MetricFrame with the whole `evaluate` (which does more: integrity,",
        "intervals from 2,000 bootstrap replicates and DeLong's for the AUCs, paired comparisons, intersections,",
        "reports; fairlearn gives point estimates only); deepchecks' data_integrity suite (its own environment,",
        "default conditions, up to 100k rows) with a run whose only gate is integrity (missing values, duplicates,",
        "conflicting labels, class balance); Evidently's DataDriftPreset (its own environment) with a run whose only",
        "gate is drift on the same 25 columns against the same reference.",
        "`evaluate` uses the default engine (DuckDB for Parquet); the arrow-engine row is the streaming pass.",
    ]
    lines += ["", *targets(dict(rows))]
    chart.write(rows, args.out.parent / "speed.svg", CHART)
    lines += ["", "![wall time and peak memory against rows, log axes](speed.svg)"]
    args.out.write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("bench/RESULTS.md"))
    args = ap.parse_args()
    rows = []
    for n in args.sizes:
        folder = Path(tempfile.mkdtemp())
        # in a child: this driver forks every timed step, and a child's peak RSS counts the parent's pages
        maker = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import speed; speed.make({n}, speed.Path({str(folder)!r}))"
        subprocess.run([sys.executable, "-c", maker], check=True)
        res = {}
        steps = [
            ("read (floor)", READ, sys.executable),
            ("mlops-gates evaluate", EVALUATE, sys.executable),
            ("mlops-gates drift only", DRIFT_RUN, sys.executable),
        ]
        if n < HUGE:  # at 100M rows: the floor, the whole evaluate (DuckDB) and drift, once each
            steps[2:2] = [
                ("mlops-gates evaluate, 100 replicates", EVALUATE_FEW, sys.executable),
                ("mlops-gates evaluate, arrow engine", EVALUATE_ARROW, sys.executable),
            ]
            steps.append(("mlops-gates integrity only", INTEGRITY_RUN, sys.executable))
        if n <= PEERS_MAX_ROWS:
            steps.append(("fairlearn MetricFrame", FAIRLEARN, sys.executable))
            if EVIDENTLY_ENV.exists():
                steps.append(("Evidently DataDriftPreset", EVIDENTLY, str(EVIDENTLY_ENV)))
            if DEEPCHECKS_ENV.exists() and n <= DEEPCHECKS_MAX_ROWS:
                steps.append(("deepchecks data_integrity", DEEPCHECKS, str(DEEPCHECKS_ENV)))
        if n == args.sizes[0]:
            steps.append(("mlops-gates --help", HELP, sys.executable))
        for name, code, python in steps:
            # ours and the floor take seconds: three runs at least, so that a ratio between two is not noise
            ours = (name.startswith("mlops-gates") or name == "read (floor)") and n < HUGE
            runs = [timed(code, folder, python) for _ in range(max(args.repeat, 3) if ours else args.repeat)]
            res[name] = (statistics.median(r[0] for r in runs), max(r[1] for r in runs))
            print(f"{n:>11,} rows  {name:36s} {res[name][0]:7.2f} s  {res[name][1]:7.0f} MB", flush=True)
        if "fairlearn MetricFrame" in res:
            print(
                f"{n:>11,} rows  fairlearn and scikit-learn agree with us (largest gap {agreement(folder):.1e})"
            )
        rows.append((n, res))
        shutil.rmtree(folder)  # 3 GB at 10M rows, 35 GB at 100M
        report(rows, args)  # after each size: a later size that fails loses only itself
    print(
        f"wrote {args.out}; peak RSS of this driver {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )


if __name__ == "__main__":
    main()
