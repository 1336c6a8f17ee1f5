"""End-to-end models: a pretrained backbone (wav2vec2, a ViT/MAE face encoder) fine-tuned with
its head. They read media, not cached features, through the loaders a track supplies
(`media`: waveform windows, face frames at the backbone's size), and train through the same
engine as every head (challenge.training.trainer). The heads that use them are registered in
challenge/heads/end_to_end.py, so tuning, ensembles, saving and `challenge predict` treat them as
any other head."""
