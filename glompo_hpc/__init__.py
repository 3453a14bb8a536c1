"""glompo_hpc: Globally Managed Parallel Optimization on HPC clusters."""

__version__ = "0.1.0"
