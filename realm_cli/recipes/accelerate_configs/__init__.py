"""Data files shipped inside the realm package (installed as realm_cli.accelerate_configs)."""
