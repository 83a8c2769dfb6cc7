"""Command-line tools, each run as `python -m dlx.tools.NAME`.

sweep        a grid of runs of one experiment (locally or as Ray tasks), one results table
compare      runs side by side: the config fields that differ, final metrics, loss curves
crossval     k-fold cross-validation of an experiment
attention_maps  a run's self-attention maps: layers x heads (GPT), class token on patches (ViT)
export       a run's weights in another format: Hugging Face GPT-2, flat safetensors
model_stats  parameters and FLOPs per layer of an experiment's model
aot_check    whether a run fits a TPU topology's memory: its train step compiled ahead of time
cli          what the tools' command lines share: one-line errors, exit status 2
"""
