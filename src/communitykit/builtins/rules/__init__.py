"""The built-in moderation rule types (each module is a plugin registered through
the ``communitykit`` entry-point group)."""
