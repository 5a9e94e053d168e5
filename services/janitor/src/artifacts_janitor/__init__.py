"""The janitor: an arq worker that deletes expired job artifacts."""
