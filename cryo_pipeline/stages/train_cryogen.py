"""Stage ``train_cryogen``: train the generator (CryoGEN, or the IsoNet-style baseline)."""

from __future__ import annotations

import logging
from pathlib import Path

from cryo_pipeline.config.dataset import DatasetRow
from cryo_pipeline.config.projection import reads
from cryo_pipeline.config.stages import TrainConfig
from cryo_pipeline.io.stage_records import meta_path_for, write_stage_meta
from cryo_pipeline.training.loop import train

log = logging.getLogger(__name__)


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
    summary = train(store=Path(store), cfg=cfg, method=method, out_model=Path(out_model),
                    out_losses=Path(out_losses), checkpoint_dir=Path(checkpoint_dir),
                    table=Path(table) if table else None, device=device)
    if summary.get("rank", 0) != 0:
        return  # not the main process of a torchrun group
    log.info("%s of %s: %d steps in %.1f s (%.2f steps/s) on %s", method, dataset.dataset, summary["steps"],
             summary["seconds"], summary["steps_per_second"], summary["device"])
    write_stage_meta(meta_path_for(Path(out_model)), stage="train_cryogen", config=cfg, dataset=dataset,
                     runtime_s=summary["seconds"], device=summary["device"], extra={"method": method, **summary})
