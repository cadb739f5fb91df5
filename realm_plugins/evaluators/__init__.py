"""Built-in evaluators plugins."""
