"""Stage ``train_cryogen``: train the generator (CryoGEN, or the IsoNet-style baseline).

The stage owns every file: it reads the training cubes of the subtomogram store, resumes
from ``<checkpoint_dir>/last.pt`` when it exists (same training config only), hands a
callback that writes that checkpoint at every epoch's end to the pure training loop
(:func:`cryo_pipeline.training.loop.train_generator`), and writes the model file, the loss
table and the record together. Under torchrun every process trains; the main one writes.

The dataset's tilt range has one source of truth: its sheet row. The store carries a
copy (written by ``extract_subtomos`` from the same row) and the model file records it
for ``predict_cryogen``; a store of another range is an error naming both.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import torch

import cryo_pipeline
from cryo_pipeline.config.dataset import DatasetRow
from cryo_pipeline.config.projection import reads
from cryo_pipeline.config.stages import TrainConfig
from cryo_pipeline.io.model_files import generator_architecture, load_checkpoint, save_checkpoint, save_generator_file
from cryo_pipeline.io.stage_records import meta_path_for, stage_outputs, write_stage_meta
from cryo_pipeline.io.subtomo_store import read_training_cubes
from cryo_pipeline.io.tables import write_loss_table
from cryo_pipeline.models.unetpp import check_divisible
from cryo_pipeline.training.data import SubtomoBatches
from cryo_pipeline.training.devices import resolve_device
from cryo_pipeline.training.distributed import setup_process_group, teardown_process_group
from cryo_pipeline.training.loop import checkpoint_config, train_generator

log = logging.getLogger(__name__)

__all__ = ["CHECKPOINT_NAME", "run"]

CHECKPOINT_NAME = "last.pt"
"""The epoch checkpoint inside ``checkpoint_dir`` (a rerun resumes from it)."""


@reads("train_cryogen")
def run(
    *,
    store: Path,
    dataset: DatasetRow,
    cfg: TrainConfig,
    method: str,
    out_model: Path,
    out_losses: Path,
    checkpoint_dir: Path,
    table: Path | None = None,
    device: str = "auto",
) -> None:
    """Train on ``store`` and write ``out_model`` (generator + config), the loss table and a record.

    ``checkpoint_dir`` keeps the epoch checkpoints: rerunning after a kill resumes there.
    ``device`` is ``execution.device`` (``auto``: CUDA when available).
    """
    store, out_model, out_losses = Path(store), Path(out_model), Path(out_losses)
    try:
        check_divisible((cfg.crop_px,) * 3, 2**cfg.depth)
    except ValueError as err:
        raise ValueError(f"train.crop_px ({cfg.crop_px}) does not fit train.depth ({cfg.depth}): {err}") from None
    cubes, attrs = read_training_cubes(store, Path(table) if table else None)
    batches = SubtomoBatches(cubes, normalization=(attrs["normalization"]["mean"], attrs["normalization"]["std"]),
                             crop_px=cfg.crop_px, source=str(store))
    del cubes
    tilt_range = dataset.tilt_range_matching((attrs["tilt_min_deg"], attrs["tilt_max_deg"]),
                                             recorded_in=f"{store} holds subtomograms of",
                                             fix="rerun extract_subtomos (it copies the row's range) or correct the sheet")
    torch_device = resolve_device(device)
    group = setup_process_group(use_cuda=torch_device.type == "cuda")
    if torch_device.type == "cuda":
        torch_device = torch.device("cuda", group.local_rank)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    checkpoint = Path(checkpoint_dir) / CHECKPOINT_NAME
    expected = checkpoint_config(cfg, method)
    try:
        resume = load_checkpoint(checkpoint, expected_config=expected, map_location=torch_device) \
            if checkpoint.is_file() else None
        result = train_generator(batches, cfg=cfg, method=method, tilt_range_deg=tilt_range, device=torch_device,
                                 group=group, resume=resume, checkpoint_label=checkpoint,
                                 save_checkpoint=functools.partial(save_checkpoint, checkpoint))
    finally:
        teardown_process_group(group)
    if not group.is_main:
        return  # a torchrun process other than the main one: nothing to write
    summary = result.summary
    log.info("%s of %s: %d steps in %.1f s (%.2f steps/s) on %s", method, dataset.dataset, summary["steps"],
             summary["seconds"], summary["steps_per_second"], summary["device"])
    with stage_outputs(out_model, out_losses, meta_path_for(out_model)) as (tmp_model, tmp_losses, tmp_meta):
        save_generator_file(tmp_model, method=method, config=expected, version=cryo_pipeline.__version__,
                            architecture=generator_architecture(cfg), generator_state=result.generator,
                            normalization=batches.normalization, tilt_range_deg=tilt_range, store=str(store),
                            summary=summary)
        write_loss_table(tmp_losses, result.history)
        write_stage_meta(tmp_meta, stage="train_cryogen", config=cfg, dataset=dataset, runtime_s=summary["seconds"],
                         device=summary["device"], extra={"method": method, **summary})
