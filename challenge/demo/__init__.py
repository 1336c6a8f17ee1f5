"""Small datasets in the official layouts whose labels are functions of what is drawn and heard."""
