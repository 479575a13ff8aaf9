"""wordcount dashboard: a live web page of the jobs, workers and Redis (read-only)."""
