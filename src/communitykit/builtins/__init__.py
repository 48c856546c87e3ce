"""The built-in plugins, registered through the ``communitykit`` entry-point group
exactly like third-party ones."""
