"""The api: GraphQL over jobs and their artifacts, presigned downloads, and the web UI."""
