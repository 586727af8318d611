"""Merge jobs: catalog-aware merges, Fisher estimation, TALL compression, kinship-guided
selection. Each is one library call; `jobs/commands/*` and `python -m jobs.merge` are
thin shells over them.

    from jobs.merging import run_merge_job, fisher_job, compress_job, select_and_merge
"""

from jobs.merging.compress_job import compress_job, reconstruct_job
from jobs.merging.fisher_job import FisherReport, fisher_job
from jobs.merging.job import MergeJobReport, run_merge_job
from jobs.merging.select import Generation, Proposal, propose
from jobs.merging.select_job import SelectionReport, select_and_merge

__all__ = [
    "FisherReport",
    "Generation",
    "MergeJobReport",
    "Proposal",
    "SelectionReport",
    "compress_job",
    "fisher_job",
    "propose",
    "reconstruct_job",
    "run_merge_job",
    "select_and_merge",
]
