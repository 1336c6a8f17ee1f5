"""The smiles-and-laughter tracks: clips and frame labels from ELAN tiers, unimodal and fused
models, and the analyses of the smiling-and-laughter studies."""
