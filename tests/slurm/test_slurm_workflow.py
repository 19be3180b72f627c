"""The workflow through ``snakemake --profile profiles/slurm`` on a real SLURM cluster.

One dataset (a 32³ hollow sphere as a tilt series; methods wbp, cryogen and cn) shrunk so
each job takes seconds. The module runs the workflow twice with the profile exactly as
shipped, except one thread per command and status checks every 1 s
(``snakemake_steady_polling.py``):

1. a run in which ``train_cryogen`` is ``scancel``-ed while its command runs: Snakemake
   must fail;
2. the rerun, which must redo that job and what depends on it, and nothing that had finished.

The tests then check the two runs' logs against SLURM's own record of every job
(``scontrol show job``; the test cluster keeps finished jobs 30 min).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from .cluster import SlurmCluster
from .snakemake_run import REPO, JobRecord, SnakemakeRun, parse_jobs, run_snakemake

pytestmark = [pytest.mark.slurm, pytest.mark.workflow]

# The cn method in the sheet (4 fit_slab jobs, stitch_slabs with its Dask workers as SLURM jobs);
# False runs wbp and cryogen only and skips the CN tests with that reason.
WITH_CN = True

PROFILE = REPO / "profiles" / "slurm"
WORKFLOW_PROFILE = REPO / "profiles" / "default"
RUN = "slurm"
DATASET = "sphere"
METHODS = "wbp,cryogen,cn" if WITH_CN else "wbp,cryogen"
SHEET = (
    "dataset\tkind\tsource\tvoxel_size_angstrom\ttilt_min_deg\ttilt_max_deg\ttilt_step_deg\tcorruption\tsnr"
    "\tmethods\tseed\tshape_px\n"
    f"{DATASET}\tsynthetic\thollow_sphere\t10.0\t-60\t60\t3\ttiltseries\t\t{METHODS}\t0\t32\n"
)
SHRINK = {  # config/config.yaml sections, changed so each job takes seconds
    "extract": {"cube_size_px": 16, "n_subtomos": 8},
    "train": {"crop_px": 16, "base_channels": 4, "depth": 2, "disc_channels": 4, "batch_size": 1, "epochs": 2,
              "steps_per_epoch": 15},
    "predict": {"tile_px": 32, "overlap_px": 8, "batch_size": 2},
    "evaluate": {"windowed_ssim": False},
}
CN_SHRINK = {  # with WITH_CN: a few iterations of a tiny SIREN, 4 slabs of 8 rows
    "cn": {"width": 16, "n_hidden_layers": 2, "seed_iterations": 30, "slab_iterations": 10, "slab_px": 8,
           "halo_px": 2, "rows_per_step": 4},
    "stitch": {"chunk_px": 16},
}
# Run-time settings (with WITH_CN): the stitch's Dask workers are SLURM jobs too, started from inside the
# stitch_slabs job. They are written by _put_run_settings, the one place that knows where the config keeps them.
STITCH_ON_SLURM = {"cluster": "slurm", "slurm_workers": 2, "slurm_cores_per_worker": 1,
                   "slurm_memory_per_worker_mb": 500, "slurm_walltime": "00:05:00", "slurm_partition": "debug"}
LOCAL_RULES = {"all", "collect_metrics", "fetch_dataset", "plan_slabs"}  # localrules (plan_slabs: if made one)
GPU_RULES = {"train_cryogen", "predict_cryogen", "predict_cryogen_tiles", "fit_slab_seed", "fit_slab"}
KILLED_RULE = "train_cryogen"
DOWNSTREAM_OF_KILLED = {("predict_cryogen", f"run={RUN}, dataset={DATASET}, method=cryogen"),
                        ("evaluate", f"run={RUN}, dataset={DATASET}, method=cryogen"),
                        ("collect_metrics", f"run={RUN}"), ("report", f"run={RUN}"), ("all", "")}


def _profile() -> dict:
    return yaml.safe_load((PROFILE / "config.yaml").read_text())


def _fast_args() -> list[str]:
    """The only changes to the profile: one thread per command (2-core runner), status every 1 s."""
    return ["--profile", str(PROFILE), "--workflow-profile", str(WORKFLOW_PROFILE),
            "--set-threads", *(f"{rule}=1" for rule in _profile()["set-threads"]),
            "--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1"]


def _put_run_settings(config: dict) -> None:
    """STITCH_ON_SLURM into the config's ``execution:`` section as ``stitch_<key>`` (run-time settings)."""
    config.setdefault("execution", {}).update({f"stitch_{key}": value for key, value in STITCH_ON_SLURM.items()})


def _make_workdir(path: Path) -> Path:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["run"] = RUN
    for section, values in {**SHRINK, **(CN_SHRINK if WITH_CN else {})}.items():
        config.setdefault(section, {}).update(values)
    if WITH_CN:
        _put_run_settings(config)
    (path / "config").mkdir(parents=True)
    (path / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (path / "config" / "datasets.tsv").write_text(SHEET)
    return path


def _mtimes(workdir: Path, outputs) -> dict[str, int]:
    """mtime (ns) of every file of ``outputs`` (files, or every file inside an output folder)."""
    stamps = {}
    for output in outputs:
        path = workdir / output
        files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
        stamps.update({str(p.relative_to(workdir)): p.stat().st_mtime_ns for p in files})
    return stamps


def _wait_until_command_started(cluster: SlurmCluster, job_id: str, rule_log: Path, run: SnakemakeRun) -> str:
    """Wait for the job's command to write its rule log (the event, however long the machine takes);
    the job's SLURM state at that moment."""
    while not rule_log.exists():
        state = cluster.jobs()[job_id].state
        assert run.running() and state == "RUNNING", f"{KILLED_RULE} job {job_id} is {state} before its " \
            f"command started; Snakemake said:\n{run.output[-3000:]}"
        time.sleep(0.1)
    return cluster.jobs()[job_id].state


@pytest.fixture(scope="module")
def runs(slurm_cluster: SlurmCluster, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Killed run, rerun and a last dry run; what each said, and SLURM's record of every job.

    Every wait is for an event (a job state in SLURM's records, a log file, Snakemake's exit), never a
    clock window: on a loaded machine jobs queue and run longer; pytest-timeout ends a real hang."""
    workdir = _make_workdir(tmp_path_factory.mktemp("slurm_workflow"))
    env = slurm_cluster.env
    try:
        with SnakemakeRun(workdir, _fast_args(), workdir / "first.log", env) as first:
            try:
                killed = slurm_cluster.wait_for_job(lambda job: job.comment.startswith(f"rule_{KILLED_RULE}_"),
                                                    while_true=first.running)
            except TimeoutError as err:
                pytest.fail(f"{err}\n--- Snakemake said:\n{first.output[-3000:]}")
            rule_log = workdir / "logs" / RUN / KILLED_RULE / f"{DATASET}.cryogen.log"
            killed_state = _wait_until_command_started(slurm_cluster, killed.job_id, rule_log, first)
            slurm_cluster.scancel(killed.job_id)
            first_code = first.wait()
    finally:
        slurm_cluster.cancel_all()
    first_output = first.output
    first_jobs = parse_jobs(first_output)
    done_outputs = [o for job in first_jobs.values() if job.finished for o in job.outputs]
    before_rerun = _mtimes(workdir, done_outputs)

    try:
        with SnakemakeRun(workdir, _fast_args(), workdir / "second.log", env) as second:
            second_code = second.wait()
    finally:
        slurm_cluster.cancel_all()
    _, after, _ = run_snakemake(workdir, *_fast_args(), "-n", log_name="after.log", env=env)
    return {"workdir": workdir, "after": after, "killed": killed, "killed_state": killed_state,
            "first": (first_code, first_output, first_jobs, first.seconds), "before_rerun": before_rerun,
            "second": (second_code, second.output, parse_jobs(second.output), second.seconds),
            "slurm": slurm_cluster.jobs()}


def _all_jobs(runs: dict) -> list[JobRecord]:
    return [*runs["first"][2].values(), *runs["second"][2].values()]


def test_scancel_fails_the_run_and_the_rerun_redoes_only_the_incomplete_jobs(runs):
    first_code, first_output, first_jobs, _ = runs["first"]
    second_code, second_output, second_jobs, _ = runs["second"]
    killed = runs["killed"]
    # the job was running its command when it was cancelled, and the run failed because of it
    assert runs["killed_state"] == "RUNNING"
    assert runs["slurm"][killed.job_id].state == "CANCELLED"
    assert first_code not in (0, -9), first_output[-3000:]
    assert f"SLURM-job '{killed.job_id}' failed, SLURM status is: 'CANCELLED'" in first_output
    [killed_record] = [j for j in first_jobs.values() if j.slurm_id == killed.job_id]
    assert killed_record.rule == KILLED_RULE and not killed_record.finished
    # the rerun succeeded, redid the killed job and everything downstream of it ...
    assert second_code == 0, second_output[-3000:]
    assert "Nothing to be done" not in second_output, (
        f"the rerun found nothing to do although {KILLED_RULE}'s outputs are missing: is "
        f"results/{RUN}/report.html the partial report of the first run's onerror handler?")
    finished_first = {j.key for j in first_jobs.values() if j.finished}
    redone = {j.key for j in second_jobs.values()}
    assert killed_record.key in redone and DOWNSTREAM_OF_KILLED <= redone
    # ... and nothing that had finished: those outputs were not touched
    assert not finished_first & redone, finished_first & redone
    assert {"simulate_volume", "project_tilt_series", "reconstruct_wbp", "extract_subtomos"} <= {
        rule for rule, _ in finished_first}
    assert _mtimes(runs["workdir"], runs["before_rerun"]) == runs["before_rerun"]
    # together the two runs did everything, each job once (the killed one twice)
    assert all(j.finished for j in second_jobs.values())
    assert "Nothing to be done" in runs["after"], runs["after"][-3000:]


def test_every_job_ran_as_its_own_slurm_job(runs):
    jobs = _all_jobs(runs)
    remote = [j for j in jobs if not j.local]
    assert remote and {j.rule for j in jobs if j.local} <= LOCAL_RULES
    assert all(j.slurm_id for j in remote), [j for j in remote if not j.slurm_id]
    assert len({j.slurm_id for j in remote}) == len(remote)  # one SLURM job per Snakemake job
    for job in remote:
        slurm = runs["slurm"][job.slurm_id]  # SLURM's own record of that job
        wildcards = "_".join(value.split("=", 1)[1] for value in job.wildcards.split(", ")) if job.wildcards else ""
        assert slurm.comment == f"rule_{job.rule}" + (f"_wildcards_{wildcards}" if wildcards else ""), slurm
        assert slurm.state == ("CANCELLED" if job.slurm_id == runs["killed"].job_id else "COMPLETED"), slurm
        log = Path(job.slurm_log)  # the plugin's per-job log, kept (slurm-keep-successful-logs)
        assert log == runs["workdir"] / ".snakemake" / "slurm_logs" / f"rule_{job.rule}" / wildcards / \
            f"{job.slurm_id}.log"
        assert log.is_file()
    metrics = pd.read_csv(runs["workdir"] / "results" / RUN / "metrics.tsv", sep="\t")
    assert sorted(metrics.method) == sorted(["corrupted", *METHODS.split(",")])
    assert (runs["workdir"] / "results" / RUN / "report.html").is_file()


def test_the_profiles_resources_and_gpu_requests_reach_slurm(runs):
    profile = _profile()
    defaults, per_rule = profile["default-resources"], profile["set-resources"]
    for job in (j for j in _all_jobs(runs) if not j.local):
        slurm = runs["slurm"][job.slurm_id]
        wanted = {**defaults, **per_rule.get(job.rule, {})}
        assert slurm.partition == wanted["slurm_partition"], slurm
        assert (slurm.cpus, slurm.mem_mb) == (wanted["cpus_per_task"], wanted["mem_mb"]), (job.rule, slurm)
        if job.rule in GPU_RULES:
            assert slurm.gpu_request == f"gres:gpu:{wanted['gpu']}", (job.rule, slurm)  # sbatch --gpus=1
        else:
            assert slurm.gpu_request == "", (job.rule, slurm)
    assert {"train_cryogen", "predict_cryogen"} <= {j.rule for j in _all_jobs(runs)}


@pytest.mark.skipif(not WITH_CN, reason="the cn method is not in the SLURM test sheet yet (WITH_CN = False)")
def test_fit_slab_jobs_ran_as_separate_slurm_jobs(runs):
    fits = [j for j in _all_jobs(runs) if j.rule == "fit_slab" and j.finished]
    assert len(fits) >= 2 and len({j.slurm_id for j in fits}) == len(fits)
    assert len({j.wildcards for j in fits}) == len(fits)  # one job per slab
    assert all(runs["slurm"][j.slurm_id].gpu_request == "gres:gpu:1" for j in fits)
    assert {"fit_slab_seed", "stitch_slabs"} <= {j.rule for j in _all_jobs(runs)}


@pytest.mark.skipif(not WITH_CN, reason="the cn method is not in the SLURM test sheet yet (WITH_CN = False)")
def test_stitch_slabs_ran_its_dask_workers_as_slurm_jobs(runs):
    """execution.stitch_cluster: slurm: the stitch_slabs job submitted its Dask workers as SLURM jobs of their own."""
    [stitch] = [runs["slurm"][j.slurm_id] for j in _all_jobs(runs) if j.rule == "stitch_slabs" and j.finished]
    workers = [job for job in runs["slurm"].values()
               if job.name == "cryo-dask-worker" and job.work_dir == str(runs["workdir"])]
    stitch_cfg = STITCH_ON_SLURM
    assert len(workers) == stitch_cfg["slurm_workers"], workers
    for worker in workers:
        assert stitch.start_time <= worker.submit_time <= worker.end_time <= stitch.end_time, (stitch, worker)
        assert (worker.partition, worker.cpus, worker.mem_mb) == (
            execution["stitch_slurm_partition"], execution["stitch_slurm_cores_per_worker"],
            execution["stitch_slurm_memory_per_worker_mb"]), worker
        assert worker.state in ("CANCELLED", "COMPLETED"), worker  # ended by the stitch when it was done


def test_unknown_partition_fails_fast_with_slurms_error(slurm_cluster, tmp_path):
    workdir = _make_workdir(tmp_path / "work")
    profile = tmp_path / "bad_profile"
    shutil.copytree(PROFILE, profile)
    text = (profile / "config.yaml").read_text()
    assert "  slurm_partition: debug " in text
    (profile / "config.yaml").write_text(text.replace("  slurm_partition: debug ", "  slurm_partition: nosuch "))
    args = [a if a != str(PROFILE) else str(profile) for a in _fast_args()]
    known = set(slurm_cluster.jobs())
    code, output, _ = run_snakemake(workdir, *args, f"results/{RUN}/{DATASET}/ground_truth.mrc",
                                    log_name="bad.log", env=slurm_cluster.env)
    assert code not in (0, -9), output[-3000:]
    # fails fast: at the first sbatch, before any job was submitted or waited for
    assert "SLURM sbatch failed" in output and "invalid partition specified: nosuch" in output
    assert not [j for j in parse_jobs(output).values() if j.slurm_id], output[-3000:]
    [log] = (workdir / ".snakemake" / "log").glob("*.snakemake.log")  # and in Snakemake's own log
    assert "invalid partition specified: nosuch" in log.read_text()
    assert set(slurm_cluster.jobs()) == known  # nothing was queued
