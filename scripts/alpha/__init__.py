"""ALPHA workflow library: everything the Snakemake entry scripts call."""
