"""Live analysis speed: what a rollout controller waits for. A million logged requests per arm in ten windows
(Parquet) with their labels; then one more window lands and the controller asks again.

Measures, in one run on this machine:
- `analyze` from scratch (the command line: every window read);
- `serve`'s look after one new window (the state kept between calls), through HTTP on loopback;
- `/metrics` for Prometheus;
- the same data judged by a fixed-horizon z-test read from scratch with pyarrow and numpy (the floor a
  from-scratch tool pays; it is not valid under repeated looks).
Usage: python bench/live_speed.py [--rows 1000000] [--out bench/RESULTS-live.md]
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

WINDOWS = 10


def write_windows(folder: Path, rows_per_arm: int, start: int, count: int) -> None:
    rng = np.random.default_rng(start)
    per = 2 * rows_per_arm // WINDOWS
    for w in range(start, start + count):
        ids = np.char.add(f"w{w}-", np.arange(per).astype(str))
        version = np.where(rng.random(per) < 0.5, "v2", "v1")
        score = rng.random(per)
        pq.write_table(
            pa.table(
                {
                    "request_id": ids,
                    "version": version,
                    "prediction": np.where(score > 0.5, "yes", "no"),
                    "score": score,
                    "latency_ms": rng.gamma(4, 10, per),
                    "error": rng.random(per) < 0.001,
                }
            ),
            folder / "requests" / f"w{w:03d}.parquet",
        )
        label = np.where(rng.random(per) < score, "yes", "no")
        pq.write_table(pa.table({"request_id": ids, "label": label}), folder / "labels" / f"w{w:03d}.parquet")


def policy(folder: Path) -> Path:
    doc = {
        "version": 1,
        "task": "binary",
        "positive_label": "yes",
        "data": {"eval": {"path": "unused.parquet"}},
        "columns": {"label": "label", "candidate": {"prediction": "prediction", "score": "score"}},
        "gates": [{"type": "accuracy", "metrics": [{"metric": "accuracy", "op": ">=", "value": 0.5}]}],
        "promotion": {
            "environments": [{"name": "production", "signers": [{"key": "k.pub"}]}],
            "analysis": {
                "metrics": [
                    {"metric": "accuracy", "margin": {"absolute": 0.01}},
                    {"metric": "log_loss", "margin": {"absolute": 0.02}},
                ],
                "guardrails": {
                    "error_rate": {"margin": {"absolute": 0.001}},
                    "latency": {"quantile": 0.99, "max_ms": 200},
                    "prediction_psi": {"max": 0.2},
                },
            },
        },
    }
    (folder / "gates.yml").write_text(yaml.safe_dump(doc))
    return folder / "gates.yml"


def fixed_horizon(folder: Path) -> str:
    """Read everything, join labels, a two-proportion z-test on accuracy: what one look costs from scratch."""
    req = pa.concat_tables(
        [
            pq.read_table(p, columns=["request_id", "version", "prediction"])
            for p in sorted((folder / "requests").glob("*.parquet"))
        ]
    )
    lab = pa.concat_tables([pq.read_table(p) for p in sorted((folder / "labels").glob("*.parquet"))])
    t = req.join(lab, "request_id")
    v = t.column("version").to_numpy(zero_copy_only=False)
    ok = t.column("prediction").to_numpy(zero_copy_only=False) == t.column("label").to_numpy(
        zero_copy_only=False
    )
    a, b = ok[v == "v2"], ok[v == "v1"]
    se = np.sqrt(a.mean() * (1 - a.mean()) / len(a) + b.mean() * (1 - b.mean()) / len(b))
    return "PROMOTE" if (a.mean() - b.mean() + 0.01) / se > 1.645 else "CONTINUE"


def timed(fn, repeat: int = 3) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    import requests

    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000, help="requests per arm")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "RESULTS-live.md")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "requests").mkdir()
        (folder / "labels").mkdir()
        write_windows(folder, args.rows, 0, WINDOWS - 1)
        pol = policy(folder)
        cli = [
            sys.executable,
            "-m",
            "mlops_gates",
            "analyze",
            "--policy",
            str(pol),
            "--canary",
            "v2",
            "--stable",
            "v1",
            "--requests",
            str(folder / "requests"),
            "--labels",
            str(folder / "labels"),
        ]
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = subprocess.Popen(
            [
                *cli[:3],
                "serve",
                *cli[4:6],
                "--requests",
                str(folder / "requests"),
                "--labels",
                str(folder / "labels"),
                "--port",
                str(port),
            ],
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    requests.get(f"{url}/healthz", timeout=1)
                    break
                except requests.ConnectionError:
                    time.sleep(0.1)

            def ask() -> dict:
                params = {"canary": "v2", "stable": "v1"}
                return requests.get(f"{url}/v1/analysis", params=params, timeout=600).json()

            first, _ = timed(lambda: ask(), repeat=1)
            write_windows(folder, args.rows, WINDOWS - 1, 1)  # one more window lands
            look, record = timed(lambda: ask(), repeat=1)
            again, _ = timed(lambda: ask())
            metrics, _ = timed(lambda: requests.get(f"{url}/metrics", timeout=60).text, repeat=10)
        finally:
            server.terminate()
            server.wait()
        scratch, _ = timed(lambda: subprocess.run(cli, capture_output=True, check=False), repeat=1)
        floor, _ = timed(lambda: fixed_horizon(folder), repeat=2)
    rows = [
        ("`analyze` from scratch (command line, every window read; includes start-up)", scratch),
        ("`serve`: first call (reads every window)", first),
        ("`serve`: the look after one new window lands", look),
        ("`serve`: a look with nothing new", again),
        ("`/metrics`", metrics),
        (
            "fixed-horizon z-test on accuracy, from scratch (pyarrow join + numpy; not valid under peeking)",
            floor,
        ),
    ]
    lines = [
        "# Live analysis speed",
        "",
        f"`python bench/live_speed.py --rows {args.rows}`: {args.rows:,} requests per arm in {WINDOWS} Parquet windows "
        f"with labels; checks: accuracy, log loss, error rate, p99 latency, prediction shift, traffic split. "
        f"Verdict: {record['verdict']}. Best of several runs where repeated; 2 cores.",
        "",
        "| what | seconds |",
        "|---|---:|",
        *[f"| {name} | {sec:.3f} |" for name, sec in rows],
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(json.dumps({name: round(sec, 3) for name, sec in rows}))


if __name__ == "__main__":
    main()
