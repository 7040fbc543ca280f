"""argparse's side of the ``alloy`` command: ``--help``, ``--version``, the messages for a mistaken
command line, and the subcommands' parsers. The gateway's own options are defined once, in
``alloy.cli.GATEWAY_OPTIONS``; a well-formed command line of those alone is read without this
module (argparse and its parser would stay in a gateway's memory, ~0.8 MB, for one reading).
"""

import argparse
import os
import sys

from alloy._version import __version__


class HelpFormatter(argparse.HelpFormatter):
    """argparse's own, given the terminal's width as ``shutil.get_terminal_size`` would find it:
    argparse imports shutil (and with it bz2 and lzma, ~0.5 MB) to ask."""

    def __init__(self, prog):
        try:
            columns = int(os.environ["COLUMNS"])
        except (KeyError, ValueError):
            try:
                columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
            except (AttributeError, ValueError, OSError):
                columns = 80
        super().__init__(prog, width=max(columns, 20) - 2)


def gateway_parser(options):
    """The parser of ``alloy [options]``, from the table of ``options`` (alloy.cli.GATEWAY_OPTIONS)."""
    parser = argparse.ArgumentParser(
        prog="alloy",
        formatter_class=HelpFormatter,
        description="Alloy: an OpenAI-compatible AI gateway. Subcommand: 'alloy mock-upstream --help'.",
    )
    parser.add_argument("--version", action="version", version=f"alloy {__version__}")
    for option in options:
        parser.add_argument(
            option.flag, type=option.type, default=option.default, choices=option.choices, metavar=option.metavar,
            help=option.help,
        )  # fmt: skip
    return parser


def check_parser():
    parser = argparse.ArgumentParser(
        prog="alloy check", description="Validate a configuration and say what it routes.", formatter_class=HelpFormatter
    )
    parser.add_argument("--config", metavar="FILE", help="alloy.toml (default: the environment alone)")
    return parser
