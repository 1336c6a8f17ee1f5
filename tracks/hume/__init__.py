"""Hume-Vidmimic2: its reader, its demo writer and the EMI track."""
