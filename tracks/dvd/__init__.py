"""DVD (fine-grained violence detection, 10th ABAW): reader, demo writer and the `vd` track."""
