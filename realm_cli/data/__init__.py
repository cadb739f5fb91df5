"""Reading data: file readers, row helpers for dataset plugins, loading and mixing, length fitting, reports."""
