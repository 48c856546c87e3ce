"""Built-in campaign types."""
