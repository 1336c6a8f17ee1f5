"""Official submission writers and validators, one module per format.

Generated files land in submissions/<track>/<run-id>/ (git-ignored)."""
