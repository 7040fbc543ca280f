"""The ``alloy`` command: argument parsing, then hand-off to the server or the mock upstream.

    alloy [--host H] [--port P] [--config alloy.toml]   run the gateway
    alloy --workers N ...                               run N gateway processes on one port
    alloy mock-upstream [--port P] ...                  run the offline OpenAI-compatible fake LLM
    alloy check [--config alloy.toml]                   validate a configuration, say what it routes
    alloy keys|teams|usage ...                          virtual keys, teams, the spend ledger
    alloy --version
"""

import logging
import signal
import sys
from collections import namedtuple
from types import SimpleNamespace

# The gateway's modules are imported once the arguments are read (the mock's and the subcommands'
# only by them); argparse only for --help, --version, a mistake or a subcommand (alloy.cli_parsers).

MAX_WORKERS = 64

Option = namedtuple("Option", "flag type default choices metavar help")

GATEWAY_OPTIONS = (
    Option("--host", str, None, None, None, "address to listen on (default 127.0.0.1; 0.0.0.0 for all)"),
    Option("--port", int, None, None, None, "port to listen on (default 3000)"),
    Option("--config", str, None, None, "FILE", "alloy.toml with providers and models"),
    Option("--workers", int, 1, None, "N", f"gateway processes sharing the port, 1 to {MAX_WORKERS} (default 1; Linux for more)"),
    Option("--log-level", str, "WARNING", ("DEBUG", "INFO", "WARNING", "ERROR"), None, None),
)  # fmt: skip


def gateway_arguments(argv):
    """The options of ``alloy [--host H] [--port P] ...`` (``GATEWAY_OPTIONS``) as argparse would
    read them. A command line of those options alone, each with its value (``--port 3000`` or
    ``--port=3000``), is read here; anything else (--help, --version, an abbreviation, a value
    that is not one) goes to argparse, which reads it or answers with its usage and exits."""
    quick = _read_quickly(argv)
    if quick is not None:
        return quick
    from alloy.cli_parsers import gateway_parser

    return gateway_parser(GATEWAY_OPTIONS).parse_args(argv)


def _read_quickly(argv):
    """The namespace of a command line of well-formed gateway options, or None."""
    options = {option.flag: option for option in GATEWAY_OPTIONS}
    values = {option.flag[2:].replace("-", "_"): option.default for option in GATEWAY_OPTIONS}
    at = 0
    while at < len(argv):
        flag, equals, value = argv[at].partition("=")
        option = options.get(flag)
        if option is None:
            return None
        if not equals:
            if at + 1 == len(argv) or argv[at + 1].startswith("-"):
                return None  # no value, or one argparse might read as an option (or a negative number)
            value = argv[at + 1]
            at += 1
        at += 1
        try:
            value = option.type(value)
        except ValueError:
            return None
        if option.choices is not None and value not in option.choices:
            return None
        values[flag[2:].replace("-", "_")] = value
    return SimpleNamespace(**values)


def check_workers(count):
    """Why ``count`` workers cannot run here, or None when they can."""
    if not 1 <= count <= MAX_WORKERS:
        return f"--workers must be between 1 and {MAX_WORKERS}, not {count}"
    if count > 1 and not sys.platform.startswith("linux"):
        return "--workers above 1 needs Linux (SO_REUSEPORT balancing between processes)"
    return None


def check(argv):
    """``alloy check [--config FILE]``: 0 when it would start, 2 (with the reason) when not."""
    from alloy import check as checking
    from alloy.cli_parsers import check_parser

    args = check_parser().parse_args(argv)
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
    args = gateway_arguments(argv)
    # A SIGHUP before the reload handler exists (the process starting, its config loading) would
    # end it: ignored until then (the server and the supervisor install their own).
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
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
