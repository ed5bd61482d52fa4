"""MLflow: the store, the run, and the pictures logged into it."""
