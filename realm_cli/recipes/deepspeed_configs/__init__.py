"""Data files shipped inside the realm package (installed as realm_cli.deepspeed_configs)."""
