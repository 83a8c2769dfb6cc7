"""Export a run's weights to another library's format (docs/interop.md#exporting-a-run).

  python -m dlx.tools.export WORKDIR[:best|latest] --format=FORMAT --out=PATH

WORKDIR is a dlx run's directory: its config.json names the experiment and the model,
and its best checkpoint (best_checkpoint/, when the run kept one) or else its newest
periodic checkpoint (checkpoints/) holds the weights; `:best` or `:latest` picks one.
The formats are dlx.interop.formats.EXPORTS:

  hf-gpt2      --out=DIR: config.json + model.safetensors, which Hugging Face's
               GPT2LMHeadModel.from_pretrained loads; the run's model must be dlx's GPT
               with output_bias=False (gpt_shakespeare_char:gpt2)
  safetensors  --out=FILE: every variable of any model, named by its path
               ('params/decoder/layer_0/...'); --config.init_from=safetensors:FILE
               starts a run from it
  torchvision  --out=FILE.safetensors (or .pth, with torch): torchvision's state dict of
               the architecture whose variables the run's model has (found from them:
               resnet18_finetune_fashion_mnist trains resnet18), which load_state_dict
               (strict=True) takes; --config.init_from=torchvision:ARCH:FILE reads it

Bad input (no such run, no checkpoint, a model the format cannot hold) is one line on
stderr and exit status 2.
"""

import argparse
import os
import pathlib
import sys

from dlx import config as config_lib
from dlx import errors
from dlx import experiment as experiment_lib
from dlx.interop import formats
from dlx.tools import cli
from dlx.training import checkpoint
from dlx.training import relaunch
from dlx.training import warm_start


def run_model(workdir: str):
  """(experiment, config, model) of the run in `workdir`, from its config.json."""
  path = pathlib.Path(workdir) / relaunch.CONFIG_FILE
  if not path.is_file():
    raise errors.UserError(f"{workdir}: no {relaunch.CONFIG_FILE}; give a dlx run's workdir")
  config = config_lib.from_json(path.read_text())
  experiment = experiment_lib.load(config.experiment)
  return experiment, config, experiment.get_model(config)


def export(ref: str, format_name: str, out) -> dict:
  """Writes the weights of the run `ref` (WORKDIR[:best|latest]) to `out` in the format
  `format_name`; returns what was written ('experiment', 'step', 'workdir', 'checkpoint')."""
  if format_name not in formats.EXPORTS:
    raise errors.UserError(
      f"--format={format_name!r}: choose one of {', '.join(sorted(formats.EXPORTS))}"
    )
  workdir, which = warm_start.parse_ref(ref)
  if not os.path.isdir(workdir):
    raise errors.UserError(f"{workdir}: no such run directory")
  experiment, _, model = run_model(workdir)
  kept = [d for d in ("best_checkpoint", "checkpoints") if checkpoint.saved_steps(f"{workdir}/{d}")]
  if not kept:
    raise errors.UserError(f"{workdir} has no checkpoint to export; train that run first")
  state, step = warm_start.restore_state(ref, "export", label=f"export {ref}")
  variables = {"params": state["params"], **state.get("model_state", {})}
  about = {"experiment": experiment.name, "step": step, "workdir": os.path.abspath(workdir)}
  formats.EXPORTS[format_name].write(model, variables, pathlib.Path(out), about)
  checkpoint_name = which or ("best" if kept[0] == "best_checkpoint" else "latest")
  return {**about, "checkpoint": checkpoint_name}


def main(argv=None):
  parser = cli.Parser(
    prog="python -m dlx.tools.export",
    description=__doc__,
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  parser.add_argument("run", metavar="WORKDIR[:best|latest]", help="a dlx run's workdir")
  parser.add_argument("--format", required=True, choices=sorted(formats.EXPORTS))
  parser.add_argument("--out", required=True, help="the directory or file to write")
  args = parser.parse_args(argv)
  try:
    written = export(args.run, args.format, args.out)
  except (errors.UserError, ImportError) as e:  # ImportError: no [interop] extra
    cli.fail(str(e))
  except OSError as e:  # an --out that cannot be written: a full disk, no permission
    cli.fail(f"--out={args.out}: {e.strerror or e}")
  print(
    f"wrote {args.out} ({args.format}): {written['experiment']}, step {written['step']}, "
    f"{written['checkpoint']} checkpoint of {written['workdir']}"
  )
  return 0


if __name__ == "__main__":
  sys.exit(main())
