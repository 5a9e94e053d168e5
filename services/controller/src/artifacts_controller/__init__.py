"""The controller: reconciles PhJobs into pods that collect their artifacts."""
