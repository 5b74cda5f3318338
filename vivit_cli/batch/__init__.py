"""Many files -> rows: the plan (sources, --resume, output), the local decode pool and the Ray runner."""
