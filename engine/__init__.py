"""The optimization loop, its proposers and feedback, and the `evocade` command line."""
