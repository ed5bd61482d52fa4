"""What a run ships for use outside this project: the MLflow pyfunc interpolator."""
