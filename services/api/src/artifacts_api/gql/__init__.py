"""The GraphQL API: SDL in ``schema/*.graphql``, one bindables module per type."""
