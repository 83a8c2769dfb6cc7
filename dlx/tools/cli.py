"""What every tool's command line shares: bad input is one `dlx: error: ...` line and exit
status 2, as for `python -m dlx.main`."""

import argparse
import sys


def fail(message: str):
  sys.stderr.write(f"dlx: error: {message}\n")
  sys.exit(2)


class Parser(argparse.ArgumentParser):
  """argparse, with its usage errors as one line (`fail`) instead of usage text."""

  def error(self, message):
    fail(message)
