"""bertcmp's Hydra launchers for SLURM through submitit (hydra/launcher=slurm). Hydra takes launchers only from the
hydra_plugins namespace package, hence this package beside bertcmp/."""
