"""What a reviewer reads: the diagnosis of each run, image grids, the environment and one HTML page."""
