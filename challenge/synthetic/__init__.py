"""Building blocks of demo data: drawn faces, synthetic voices and tiny random-weight stand-in models in the real formats."""
