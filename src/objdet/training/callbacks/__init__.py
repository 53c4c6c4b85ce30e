"""Lightning callbacks that own a metric, plot it on rank 0 and route figures to loggers."""
