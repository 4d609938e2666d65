"""The trajectory store: a directory of safetensors shards plus a JSON-lines manifest, written
atomically and resumably (design.md "Data model"; layout and format choice in ``format.py``).

    store = traction.store.open_store("cache/")      # reads the manifest only
    rec = store[0]                                    # Record(clip_id, label, split, trajectories, meta)
    with traction.store.StoreWriter("cache/", tracker="lk") as w:
        w.add("clip-1", trajectories, label="jump", split="train")
"""
from traction.store.errorlog import log_error, read_errors
from traction.store.format import FORMAT, VERSION, ManifestEntry
from traction.store.reader import Record, TrajectoryStore, open_store
from traction.store.stats import format_stats, stats
from traction.store.writer import StoreWriter

__all__ = ["FORMAT", "VERSION", "ManifestEntry", "Record", "StoreWriter", "TrajectoryStore",
           "format_stats", "log_error", "open_store", "read_errors", "stats"]
