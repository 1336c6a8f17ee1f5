"""Aff-Wild2 and C-EXPR-DB: the reader, the demo writer, the shared layout and the EXPR, VA, AU and CE tracks."""
