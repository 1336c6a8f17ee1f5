"""The networks and their checkpoint loaders, shared by the extractors, fine-tuning and pretraining."""
