"""Bulk trajectory extraction (paper §3 "Trajectory extraction", appendix E; design.md "Extraction").

    extract_clip(path_or_frames, tracker=, depth_model=, points=2500, frames=32, ...) -> Trajectories
    Extractor(ExtractConfig(...))(job) -> ClipResult          models loaded once, never raises per clip
    collect_jobs(videos, list_file) -> (jobs, problems)       inputs -> Job(path, clip_id, label, split)
    run_local(jobs, problems, out, config, workers=N)         multi-process, resumable, errors logged
    run_ray(jobs, problems, out, config, address=, workers=)  the same on a Ray cluster (Ray Data)

The command line is ``traction extract`` (``traction.extract.cli``).
"""
from traction.extract.inputs import InputProblem, Job, collect_jobs, expand_inputs, read_list_file
from traction.extract.pipeline import ClipResult, ExtractConfig, Extractor, clip_seed, extract_clip, load_models
from traction.extract.runner import Summary, run_local

from traction.extract.ray_runner import run_ray  # Ray itself is imported only when used

__all__ = ["ClipResult", "ExtractConfig", "Extractor", "InputProblem", "Job", "Summary", "clip_seed",
           "collect_jobs", "expand_inputs", "extract_clip", "load_models", "read_list_file", "run_local",
           "run_ray"]
