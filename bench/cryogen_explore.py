"""Benchmark "cryogen_explore": the search for an energy term that helps, on HELD-BACK cases.

Everything tried to make CryoGEN's energy model matter (issue 13, item 2) runs here, on
cases the reported benchmark (``cryogen_quality``: sphere, prism, β-gal) never sees: the
70S ribosome map (65³, ``shared/data/real``, its own rotation seed) and five prism
rotations (seeds 100–104) in 64³ boxes. Each variant is the demo's ``train`` section
with a few keys changed; the defaults shipped in config/config.yaml were chosen from
this table only. ``--quick``: one variant on a 32³ sphere, 20 steps.

Rows: one per (case, variant), mean ± sd over the seeds run (the exploration ran most
variants with one or two seeds, so single-seed gaps under ~0.3 dB are noise).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from bench._cryogen_protocol import CASES, demo_train_config, run_arm, sphere_case, summarize, yaml_train_overrides
from bench.harness import BenchResult, register

HELD_BACK = ("ribosome", "prism_heldback")
ADV0 = {"adversarial_weight": 0.0, "adversarial_weight_start": None}
EXPLORED_FROM = {"adversarial_weight": 0.05, "critic_input": "matched"}
"""The demo's critic keys while the variants were explored (before fill_w1 became the default)."""
# variant name -> (method, train overrides on top of the demo config with EXPLORED_FROM)
VARIANTS: dict[str, tuple[str, dict]] = {
    "corrupted": ("corrupted", {}),
    "isonet": ("isonet", {}),
    "adv0": ("cryogen", ADV0),
    "bce_w0.05": ("cryogen", {"adversarial_weight": 0.05}),
    "bce_w0.05_paper_critic": ("cryogen", {"adversarial_weight": 0.05, "critic_input": "paper"}),
    "bce_w0.3": ("cryogen", {"adversarial_weight": 0.3}),
    "bce_w1": ("cryogen", {"adversarial_weight": 1.0}),
    "bce_w0.3_ramp_lam0.1": ("cryogen", {"adversarial_weight": 0.3, "adversarial_weight_start": 0.0,
                                          "consistency_weight_final": 0.1}),
    "hinge_r1_w0.3": ("cryogen", {"adversarial_weight": 0.3, "adversarial_loss": "hinge", "r1_weight": 1.0}),
    "bce_w0.3_amplitude": ("cryogen", {"adversarial_weight": 0.3, "critic_features": "volume+amplitude"}),
    "bce_w0.3_ttur": ("cryogen", {"adversarial_weight": 0.3, "learning_rate_energy": 0.003, "critic_steps": 2}),
    "bce_w0.3_disc32": ("cryogen", {"adversarial_weight": 0.3, "disc_channels": 32}),
    "wgan_gp_w0.05": ("cryogen", {"adversarial_weight": 0.05, "adversarial_loss": "wgan-gp", "spectral_norm": False}),
    "fill_w0.3": ("cryogen", {"adversarial_weight": 0.3, "critic_input": "fill"}),
    "fill_w1": ("cryogen", {"adversarial_weight": 1.0, "critic_input": "fill"}),
    "fill_w3": ("cryogen", {"adversarial_weight": 3.0, "critic_input": "fill"}),
    "fill_w3_ramp_lam0.1": ("cryogen", {"adversarial_weight": 3.0, "adversarial_weight_start": 0.0,
                                         "consistency_weight_final": 0.1, "critic_input": "fill"}),
    "paper_critic_w1": ("cryogen", {"adversarial_weight": 1.0, "critic_input": "paper"}),
    "paper_literal": ("cryogen", yaml_train_overrides("paper_literal.yaml")),
    "paper_literal_w0.05": ("cryogen", {**yaml_train_overrides("paper_literal.yaml"), "adversarial_weight": 0.05}),
    "paper_literal_adv0": ("cryogen", {**yaml_train_overrides("paper_literal.yaml"), **ADV0}),
}
VARIANTS = {name: (method, {**EXPLORED_FROM, **keys}) for name, (method, keys) in VARIANTS.items()}
LOG = Path(os.environ.get("CRYOGEN_EXPLORE_LOG", Path(__file__).resolve().parent / "results" / "cryogen_explore_runs.jsonl"))


def explore(variants, *, cases=HELD_BACK, seeds=(0,), log: Path = LOG, **overrides) -> list[dict]:
    """Run ``variants`` on ``cases`` × ``seeds``, appending one JSON line per run to ``log``."""
    torch.set_num_threads(1)
    runs = []
    for name in cases:
        case = CASES[name]() if isinstance(name, str) else name
        for seed in seeds:
            for variant in variants:
                method, keys = VARIANTS[variant]
                cfg = demo_train_config(**{**overrides, **keys, "seed": seed})
                result = run_arm(case, method=method, cfg=cfg)
                run = {"case": case.name, "arm": variant, "seed": seed, **result}
                runs.append(run)
                with log.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(run) + "\n")
                print(f"[cryogen_explore] {case.name} {variant} seed {seed}: keep {result['keep_measured'][0]:.2f}"
                      f" raw {result['raw'][0]:.2f} dB ({result['seconds']:.0f} s)", flush=True)
    return runs


@register("cryogen_explore")
def run(*, quick: bool = False) -> BenchResult:
    """Every variant tried for the energy term, on held-back cases (ribosome, prism seeds 100-104)."""
    if quick:
        runs = explore(["bce_w0.05"], cases=[sphere_case(32)], log=Path(os.devnull),
                       epochs=2, steps_per_epoch=10, crop_px=16)
    elif LOG.is_file():  # the runs already made (the exploration is long; it was run piece by piece)
        runs = [json.loads(line) for line in LOG.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        runs = explore(list(VARIANTS), seeds=(0, 1))
    return BenchResult(
        name="cryogen_explore",
        params={"quick": quick, "variants": {k: v[1] | {"method": v[0]} for k, v in VARIANTS.items()},
                "base": demo_train_config().model_dump(mode="json"), "runs": runs},
        rows=summarize(runs),
        notes=["Held-back cases only; psnr = the paper's PSNR (dB), ssim = global SSIM x 100, mean ± sd over seeds.",
               "Demo train section (config/config.yaml) with each variant's keys changed; 1 CPU thread; the machine "
               "was shared while measuring."],
    )
