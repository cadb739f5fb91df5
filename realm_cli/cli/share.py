from pathlib import Path

import typer
from rich.console import Console

RUN = typer.Argument(..., help="A run directory of `realm train-rm` or `realm align`.")


def export(run_dir: Path = RUN,
           output_dir: Path = typer.Option(..., "--output-dir", "-o", help="A new directory for the plain model.")):
    """Write a run's model as a plain directory: LoRA merged, tokenizer, model card (base, data, recipe, metrics)."""
    from realm_cli.share.export import export as export_run

    out = export_run(run_dir, output_dir)
    Console(stderr=True).print(f"exported {run_dir} to {out} (load it with from_pretrained)", highlight=False)


def push(run_dir: Path = RUN, repo_id: str = typer.Argument(..., help="Hub repository, OWNER/NAME."),
         local_dir: Path = typer.Option(None, "--local-dir", help="Write what the repository would hold to "
                                        "LOCAL_DIR/OWNER/NAME instead of uploading."),
         private: bool = typer.Option(False, "--private", help="Create the hub repository private.")):
    """Upload a run's model to the Hugging Face hub with a generated model card (token: `hf auth login` or HF_TOKEN)."""
    from realm_cli.share.export import push as push_run

    where = push_run(run_dir, repo_id, local_dir=local_dir, private=private)
    Console(stderr=True).print(f"pushed {run_dir} to {where}", highlight=False)
