"""Fine-tune one model on a shard set: the thin CLI that torchrun starts on every rank.

    torchrun --nproc-per-node 2 scripts/train.py --recipe config/recipes/tiny/full.yaml \\
        --base results/models/tiny-llama-chat --shards results/shards/alpha \\
        --output results/train/alpha-tiny/model --checkpoints results/train/alpha-tiny/checkpoints \\
        --metrics results/train/alpha-tiny/metrics.json [--set learning_rate=1e-3 ...]

A rerun with the same checkpoint folder resumes from its latest checkpoint.
"""
import argparse
import logging
import os

import yaml

from alpha.core.io import setup_logging
from alpha.train import finetune


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", required=True)
    ap.add_argument("--base", required=True, help="base model: a local folder or a hub id the cluster can resolve")
    ap.add_argument("--chat-template", default=None, help="a template name of alpha.core.chat.TEMPLATES; default: the tokenizer's own")
    ap.add_argument("--shards", required=True, help="shard set folder (with manifest.json)")
    ap.add_argument("--output", required=True)
    ap.add_argument("--checkpoints", required=True)
    ap.add_argument("--metrics", required=True)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe key (YAML value)")
    args = ap.parse_args()
    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            ap.error(f"--set {item!r}: expected KEY=VALUE")
        overrides[key] = yaml.safe_load(value)
    setup_logging(None, logging.INFO if os.environ.get("RANK", "0") == "0" else logging.WARNING)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    finetune.run(recipe_path=args.recipe, base_model=args.base, chat_template=args.chat_template, shards=args.shards,
                 output=args.output, checkpoints=args.checkpoints, metrics=args.metrics, overrides=overrides)
    finetune.shutdown()


if __name__ == "__main__":
    main()
