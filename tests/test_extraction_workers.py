"""Extraction across processes and machines: shards of one dataset fill one store, each entry
once; `--workers K` runs the shards as processes; a worker killed in the middle loses nothing
and leaves no half-written entry."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from challenge.app.cli import app
from challenge.features import FeatureStore

BIN = Path(sys.executable).parent / "challenge"
runner = CliRunner()


def extract_args(root: Path, store: Path, *extra: str) -> list[str]:
    return ["features", "extract", "--data", str(root), "--track", "emi", "--extractor", "egemaps", "--store", str(store), "-q", *extra]


def computed_and_cached(output: str) -> tuple[int, int]:
    found = re.search(r"egemaps: (\d+) computed, (\d+) cached", output)
    assert found, output
    return int(found[1]), int(found[2])


def entries(store: Path) -> int:
    return sum(group.entries for group in FeatureStore(store).groups()) if store.exists() else 0


def test_shards_fill_one_store_each_entry_once(emi_root, tmp_path):
    store = tmp_path / "store"
    counts = []
    for shard in ("0/2", "1/2"):
        result = runner.invoke(app, extract_args(emi_root, store, "--shard", shard))
        assert result.exit_code == 0, result.output + repr(result.exception)
        counts.append(computed_and_cached(result.output))
    whole = runner.invoke(app, extract_args(emi_root, store))
    computed, cached = computed_and_cached(whole.output)
    assert computed == 0 and cached == counts[0][0] + counts[1][0] == entries(store)
    assert counts[0][1] == counts[1][1] == 0 and min(counts[0][0], counts[1][0]) > 0  # disjoint, both non-empty

    wrong = runner.invoke(app, extract_args(emi_root, store, "--shard", "2/2"))
    assert wrong.exit_code != 0 and "0 <= I < N" in str(wrong.exception)


def test_a_killed_extraction_worker_loses_nothing_and_workers_finish_the_store(emi_root, tmp_path):
    store = tmp_path / "store"
    total = computed_and_cached(runner.invoke(app, extract_args(emi_root, tmp_path / "reference")).output)[0]
    killed = subprocess.Popen([str(BIN), *extract_args(emi_root, store)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while entries(store) < 1 and time.time() < deadline:
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    kept = entries(store)
    assert 1 <= kept < total, f"the kill came at {kept} of {total} entries"

    resumed = subprocess.run([str(BIN), *extract_args(emi_root, store, "--workers", "2")], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0 and "2 of 2 workers finished" in resumed.stdout, resumed.stdout + resumed.stderr
    computed = sum(computed_and_cached(line)[0] for line in resumed.stdout.splitlines() if "computed" in line)
    assert computed == total - kept and entries(store) == total  # the killed worker's entries are kept, none twice
    verify = runner.invoke(app, ["features", "verify", "--store", str(store), "-q"])
    assert verify.exit_code == 0, verify.output  # no entry half-written


def _flip_bytes(store: Path, count: int) -> list[Path]:
    """Damage `count` entries the way a bad sector does: the structure stays valid, the checksum does not."""
    damaged = sorted(store.glob("egemaps-*/*/*.npy"))[:count]
    for path in damaged:
        data = bytearray(path.read_bytes())
        data[-9] ^= 0xFF
        path.write_bytes(bytes(data))
    return damaged


def _damaged(store: Path) -> int:
    from challenge.stores.feature_store import check_entries

    return sum(problem is not None for _, _, problem in check_entries(FeatureStore(store).entry_files()))


def test_a_repair_started_elsewhere_and_killed_midway_loses_no_entry(emi_root, tmp_path):
    """Extraction ran with a relative --data; the repair runs from another directory, is SIGKILLed
    after rebuilding some entries, and the next verify still finds every other damaged entry;
    the repair after it rebuilds them all and removes none."""
    store = tmp_path / "store"
    (tmp_path / "elsewhere").mkdir()
    # extraction runs beside the dataset and names it relatively, as `--data hume` would
    extracted = subprocess.run(
        [str(BIN), *extract_args(Path(emi_root.name), store)], cwd=emi_root.parent, capture_output=True, text=True, timeout=300
    )
    assert extracted.returncode == 0, extracted.stdout + extracted.stderr
    total = entries(store)
    _flip_bytes(store, 10)
    assert _damaged(store) == 10

    repair = [str(BIN), "features", "verify", "--repair", "--store", str(store), "-q"]
    killed = subprocess.Popen(repair, cwd=tmp_path / "elsewhere", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while _damaged(store) > 8 and killed.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    left = _damaged(store)
    assert 0 < left < 10, f"the kill came when {left} of 10 entries were still damaged"
    assert entries(store) == total, "the killed repair removed entries it had not rebuilt"

    found = subprocess.run(
        [str(BIN), "features", "verify", "--store", str(store), "-q"], cwd=tmp_path / "elsewhere", capture_output=True, text=True
    )
    assert found.returncode == 1 and f"{left} damaged" in found.stdout, found.stdout
    repaired = subprocess.run(repair, cwd=tmp_path / "elsewhere", capture_output=True, text=True, timeout=300)
    assert repaired.returncode == 0 and f"repaired {left}; removed without recomputing 0" in repaired.stdout, (
        repaired.stdout + repaired.stderr
    )
    assert _damaged(store) == 0 and entries(store) == total
