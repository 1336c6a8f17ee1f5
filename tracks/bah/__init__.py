"""BAH (Ambivalence/Hesitancy, 10th-11th ABAW): reader, demo writer and the `ah` track."""
