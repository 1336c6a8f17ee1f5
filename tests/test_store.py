import dataclasses
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from challenge.features import FeatureStore, extractor_class, make_extractor
from challenge.features.extract import extract
from challenge.registry import entry_point_names
from tracks.hume.reader import read_hume


def test_cache_hit_reuses_entries_and_loads_memory_mapped(emi_root, store_root):
    samples = read_hume(emi_root)
    extractor = make_extractor("egemaps")
    first = extract(extractor, samples, FeatureStore())
    assert first.computed == 22 and first.cached == 0
    second = extract(extractor, samples, FeatureStore())
    assert second.computed == 0 and second.cached == 22
    array, meta = FeatureStore().load(extractor, second.digests["00000"])
    assert isinstance(array, np.memmap) and array.shape[1] == 25 and meta["frame_rate"] == 100.0


EXTRACTOR_NAMES = sorted(entry_point_names("challenge.extractors"))  # every registered one: the registry's own list


@pytest.mark.parametrize("name", EXTRACTOR_NAMES)
def test_cache_key_changes_with_every_config_field(name):
    base = extractor_class(name)()
    for field in dataclasses.fields(base):
        value = getattr(base, field.name)
        changed = {
            bool: lambda v: not v,
            int: lambda v: v + 1,
            float: lambda v: v + 0.5,
            str: lambda v: v + "x",
            list: lambda v: [*v, 1],
            tuple: lambda v: (*v, 1),
            type(None): lambda v: 4,
        }[type(value)](value)  # an optional setting (mae.heads) set
        assert dataclasses.replace(base, **{field.name: changed}).cache_key() != base.cache_key(), field.name


def test_media_change_gives_a_new_entry(tmp_path, store_root, emi_root):
    import shutil

    audio = tmp_path / "a.mp3"
    shutil.copy(emi_root / "audio" / "00000.mp3", audio)
    store = FeatureStore()
    before = store.media_digest(audio)
    shutil.copy(emi_root / "audio" / "00001.mp3", audio)
    assert store.media_digest(audio) != before


def test_shared_read_only_root_is_consulted_first(emi_root, tmp_path):
    samples = read_hume(emi_root).split("valid")
    extractor = make_extractor("egemaps")
    extract(extractor, samples, FeatureStore(tmp_path / "shared"))
    os.chmod(tmp_path / "shared", 0o555)
    try:
        local = FeatureStore(tmp_path / "local", shared_roots=[tmp_path / "shared"])
        report = extract(extractor, samples, local)
        assert report.computed == 0 and report.cached == len(samples)
        assert not list((tmp_path / "local").glob("egemaps-*"))
    finally:
        os.chmod(tmp_path / "shared", 0o755)


KILLED_DURING_WRITE = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    from tracks.hume.reader import read_hume
    from challenge.features import FeatureStore, make_extractor
    from challenge.features.extract import extract
    from challenge.stores import feature_store as store_module

    calls = {"n": 0}
    real_write = store_module._atomic_write_bytes

    def write_then_die(path, write):
        if path.suffix == ".json" and "_digests" not in str(path) and path.name != "config.json":
            calls["n"] += 1
            if calls["n"] == 3:  # array of the 3rd entry written, its metadata not yet
                os.kill(os.getpid(), signal.SIGKILL)
        real_write(path, write)

    store_module._atomic_write_bytes = write_then_die
    extract(make_extractor("egemaps"), read_hume(sys.argv[1]).split("train"), FeatureStore(sys.argv[2]))
    """
)


def test_sigkill_mid_extraction_leaves_no_entry_that_loads_as_valid(emi_root, tmp_path):
    root = tmp_path / "store"
    result = subprocess.run([sys.executable, "-c", KILLED_DURING_WRITE, str(emi_root), str(root)])
    assert result.returncode == -signal.SIGKILL
    store, extractor = FeatureStore(root), make_extractor("egemaps")
    arrays = list(root.glob("egemaps-*/*/*.npy"))
    complete = [p for p in arrays if p.with_suffix(".json").exists()]
    assert len(complete) == 2 and len(arrays) == 3  # the third array has no metadata: incomplete
    orphan = next(p for p in arrays if not p.with_suffix(".json").exists())
    assert not store.has(extractor, orphan.stem)
    report = extract(extractor, read_hume(emi_root).split("train"), store)  # resumes
    assert report.cached == 2 and report.computed == 10
    assert store.load(extractor, orphan.stem)[0].shape[1] == 25


def _extract_in_process(args):
    emi_root, root = args
    from challenge.progress import set_quiet

    set_quiet(True)
    return extract(make_extractor("egemaps"), read_hume(emi_root), FeatureStore(root)).computed


def test_two_processes_never_compute_the_same_entry(emi_root, tmp_path):
    root = tmp_path / "store"
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        computed = pool.map(_extract_in_process, [(str(emi_root), str(root))] * 2)
    assert sum(computed) == 22  # each of the 22 entries computed exactly once between the two
    assert len(list(root.glob("egemaps-*/*/*.json"))) == 22


def test_corrupt_metadata_is_not_a_hit(emi_root, store_root):
    samples = read_hume(emi_root).split("valid")
    extractor = make_extractor("egemaps")
    extract(extractor, samples, FeatureStore())
    meta = next(store_root.glob("egemaps-*/*/*.json"))
    meta.write_text("{truncated")
    again = extract(extractor, samples, FeatureStore())
    assert again.computed == 1 and again.cached == len(samples) - 1


def test_corrupt_media_is_reported_after_the_good_entries_are_cached(emi_root, tmp_path, store_root):
    import shutil

    from challenge.errors import ChallengeError

    root = shutil.copytree(emi_root, tmp_path / "emi")
    (root / "audio" / "00013.mp3").write_bytes(b"ID3 this is not audio" * 50)
    samples = read_hume(root).split("valid")
    with pytest.raises(ChallengeError, match=r"(?s)1 media file\(s\) could not be processed \(5 others.*00013.mp3"):
        extract(make_extractor("egemaps"), samples, FeatureStore())
    (root / "audio" / "00013.mp3").unlink()
    shutil.copy(emi_root / "audio" / "00013.mp3", root / "audio" / "00013.mp3")
    report = extract(make_extractor("egemaps"), samples, FeatureStore())
    assert report.computed == 1 and report.cached == 5


def test_model_digests_are_cached_in_the_store_the_run_was_given(tmp_path, monkeypatch, models):
    """--store names where everything of the run's features goes, the model digests included."""
    from challenge.features import FeatureStore, make_extractor

    monkeypatch.setenv("CHALLENGE_FEATURE_STORE", str(tmp_path / "default"))
    FeatureStore(tmp_path / "given")
    make_extractor("wav2vec2", model=str(models["wav2vec2"])).cache_key()
    assert list((tmp_path / "given" / "_digests").glob("*.json"))
    assert not (tmp_path / "default").exists()
