"""The ``alloy`` command: argument parsing, then hand-off to the server or the mock upstream.

    alloy [--host H] [--port P] [--config alloy.toml]   run the gateway
    alloy --workers N ...                               run N gateway processes on one port
    alloy mock-upstream [--port P] ...                  run the offline OpenAI-compatible fake LLM
    alloy check [--config alloy.toml]                   validate a configuration, say what it routes
    alloy keys|teams|usage ...                          virtual keys, teams, the spend ledger
    alloy --version
"""

import argparse
import logging
import os
import sys

from alloy._version import __version__

# The gateway's modules are imported once the arguments are read: what argparse built and dropped
# by then is reused by those imports instead of staying a hole in the process's memory (~0.5 MB).

MAX_WORKERS = 64


class HelpFormatter(argparse.HelpFormatter):
    """argparse's own, given the terminal's width as ``shutil.get_terminal_size`` would find it:
    argparse imports shutil (and with it bz2 and lzma, ~0.5 MB) to ask, and a gateway would keep
    them for its whole life."""

    def __init__(self, prog):
        try:
            columns = int(os.environ["COLUMNS"])
        except (KeyError, ValueError):
            try:
                columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
            except (AttributeError, ValueError, OSError):
                columns = 80
        super().__init__(prog, width=max(columns, 20) - 2)


def gateway_arguments():
    parser = argparse.ArgumentParser(
        prog="alloy",
        formatter_class=HelpFormatter,
        description="Alloy: an OpenAI-compatible AI gateway. Subcommand: 'alloy mock-upstream --help'.",
    )
    parser.add_argument("--version", action="version", version=f"alloy {__version__}")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    parser.add_argument("--port", type=int, help="port to listen on (default 3000)")
    parser.add_argument("--config", metavar="FILE", help="alloy.toml with providers and models")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help=f"gateway processes sharing the port, 1 to {MAX_WORKERS} (default 1; Linux for more)",
    )
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def check_workers(count):
    """Why ``count`` workers cannot run here, or None when they can."""
    if not 1 <= count <= MAX_WORKERS:
        return f"--workers must be between 1 and {MAX_WORKERS}, not {count}"
    if count > 1 and not sys.platform.startswith("linux"):
        return "--workers above 1 needs Linux (SO_REUSEPORT balancing between processes)"
    return None


def check(argv):
    """``alloy check [--config FILE]``: 0 when it would start, 2 (with the reason) when not."""
    parser = argparse.ArgumentParser(
        prog="alloy check", description="Validate a configuration and say what it routes.", formatter_class=HelpFormatter
    )
    parser.add_argument("--config", metavar="FILE", help="alloy.toml (default: the environment alone)")
    args = parser.parse_args(argv)
    from alloy import check as checking
    from alloy.config import ConfigError

    try:
        return checking.main(args.config)
    except ConfigError as error:
        print(f"alloy: configuration refused: {error}", file=sys.stderr)
        return 2


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "mock-upstream":
        # Imported here: the gateway itself never loads the mock's ~5 MB unless it serves it.
        from alloy import mock_upstream

        raise SystemExit(mock_upstream.main(argv[1:]))
    if argv and argv[0] == "check":
        raise SystemExit(check(argv[1:]))
    if argv and argv[0] in ("keys", "teams", "usage"):
        from alloy.governance import commands  # only these subcommands need it

        raise SystemExit(commands.main(argv))
    args = gateway_arguments().parse_args(argv)
    refused = check_workers(args.workers)
    if refused:
        print(f"alloy: {refused}", file=sys.stderr)
        raise SystemExit(2)
    from alloy import server
    from alloy.config import ConfigError, load
    from alloy.observability import describe

    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load(args.config, host=args.host, port=args.port)
    except ConfigError as error:
        print(f"alloy: configuration refused: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    logging.getLogger("alloy").info("configuration loaded from %s: %s", args.config or "the environment", describe(config))
    try:
        if args.workers == 1:
            server.run(config)
            code = 0
        else:  # forks the workers, which run server.run with SO_REUSEPORT
            from alloy import supervisor

            code = supervisor.run(config, args.workers)
    except server.ListenError as error:  # e.g. the port is taken
        print(f"alloy: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    raise SystemExit(code)
