"""Self-supervised pretraining on the team's own data: a masked autoencoder on face images
(`challenge pretrain mae`). Its output folder is a backbone `--visual-model` takes, for frozen
features and for fine-tuning alike."""
