"""bertcmp's Hydra launcher for Ray (hydra/launcher=ray). Hydra takes launchers only from the hydra_plugins
namespace package, hence this package beside bertcmp/."""
