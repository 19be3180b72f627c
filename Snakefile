# cryo_pipeline: missing-wedge correction for cryo-ET. See README.md.
# Every rule runs one `cryo-pipeline <command>`; the science lives in the package.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/fetch.smk"
include: "workflow/rules/align.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/reconstruct.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/cryogen.smk"
include: "workflow/rules/cn.smk"
include: "workflow/rules/validate.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


localrules:
    all,
    collect_metrics,


rule all:
    """The run's HTML report (and, through it, every dataset and method of the sheet), and the RELION-5 hand-off."""
    input:
        f"results/{RUN}/report.html",
        relion_stars(),
