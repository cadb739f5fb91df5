"""Recipes: loading and validation, launching (accelerate argv), the runner, pipelines; shipped launch configs."""
