"""The smiles-and-laughter studies (ELAN corpora): reader, labels, features, protocols, analyses and the smile-laugh and smile-intensity tracks."""
