# Models: the embedded default's base model, fine-tuning with DeepSpeed (one job per fine-tuned
# registry entry, one launcher per node), and merging LoRA adapters.


rule build_tiny_model:
    input:
        samples=get_sample_files(),
        external=DEMO_EXTERNAL if demo_enabled() else [],
        code=code_for("scripts/build_tiny_model.py"),
    output:
        directory(TINY_BASE),
    log:
        "results/logs/build_tiny_model.log",
    benchmark:
        "results/benchmarks/build_tiny_model.tsv"
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=by_attempt(4000),
        runtime=by_attempt(30),
    params:
        seed=config["seed"],
        spec=dict(sorted(config["tiny_model"].items())),
    script:
        "../scripts/build_tiny_model.py"


# The training command (a shell rule: srun starts the launchers). The workflow reruns on content, not
# times (profiles/default: rerun-triggers without "code", every script's code is a checksummed input),
# so a change to this text reaches the job through its hash in params.
TRAIN_SHELL = """
launch=""
if [ -n "${{SLURM_JOB_ID:-}}" ]; then launch="{resources.mpi} {params.run[srun]}"; fi
export TOKENIZERS_PARALLELISM=false ALPHA_TORCH_THREADS={params.run[threads_per_rank]}
$launch python scripts/launch_node.py --nproc-per-node {params.run[nproc]} -- \\
    scripts/train.py --recipe {input.recipe} --base {params.run[base]} {params.run[template]} {params.run[overrides]} \\
    --shards {input.shards} --output {output.model} --metrics {output.metrics} \\
    --checkpoints {params.checkpoints} > {log} 2>&1
if [ "${{ALPHA_KEEP_CHECKPOINTS:-0}}" = "0" ]; then rm -rf {params.checkpoints}; fi
"""
TRAIN_SHELL_SHA = hashlib.sha256(TRAIN_SHELL.encode()).hexdigest()[:16]


# Runs the same way everywhere: without Slurm, the launcher starts torchrun on this machine; inside
# a Slurm allocation (SLURM_JOB_ID set), `srun` starts one launcher per node, each derives the
# rendezvous from SLURM_* and starts its ranks. A rerun (or a --retries attempt, or a requeue)
# resumes from the newest checkpoint in results/train/<model>/checkpoints, which is removed after
# success unless ALPHA_KEEP_CHECKPOINTS=1 (an environment variable, so that it never reruns training).
rule train_model:
    input:
        unpack(get_train_inputs),
    output:
        model=directory("results/train/{model}/model"),
        metrics="results/train/{model}/metrics.json",
    log:
        "results/logs/train_model/{model}.log",
    benchmark:
        "results/benchmarks/train_model/{model}.tsv"
    conda:
        "../envs/train.yaml"
    threads: get_train_resource("procs_per_node")
    resources:
        nodes=get_train_resource("nodes"),
        tasks=get_train_resource("tasks"),
        tasks_per_gpu=0,  # one rank per GPU is torchrun's job, not Slurm's
        cpus_per_task=get_train_resource("cpus_per_task"),
        gres=get_train_gres,
        mem_mb=get_train_resource("mem_mb"),
        runtime=get_train_resource("runtime"),
        mpi="srun",
    params:
        run=get_train_params,
        checkpoints="results/train/{model}/checkpoints",
        command=TRAIN_SHELL_SHA,
    shell:
        TRAIN_SHELL


rule merge_lora:
    input:
        adapter="results/train/{model}/model",
        base=get_merge_base,
        code=code_for("scripts/merge_lora.py"),
    output:
        directory("results/train/{model}/merged"),
    log:
        "results/logs/merge_lora/{model}.log",
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=by_attempt(8000),
        runtime=by_attempt(60),
    params:
        base=get_merge_base_id,
    script:
        "../scripts/merge_lora.py"
