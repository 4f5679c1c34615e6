"""bertcmp's Hydra configs; installed as the package bertcmp.conf so an installed bertcmp finds them."""
