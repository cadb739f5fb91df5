"""realm's built-in plugins, loaded through the `realm` entry-point group like any third-party package."""
