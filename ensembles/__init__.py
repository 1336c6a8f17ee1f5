"""Combining predictions: Gaussian temporal smoothing now; background-split and fold ensembles next."""
