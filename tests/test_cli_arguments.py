"""The gateway's command line is read without argparse when it is well-formed (alloy.cli), and
must mean exactly what argparse would make of it: every case here is read both ways and compared.
A command line the quick reading does not take goes to argparse itself, whose answer is checked
too (a value argparse refuses exits 2 with its usage)."""

import pytest

from alloy.cli import GATEWAY_OPTIONS, _read_quickly, gateway_arguments
from alloy.cli_parsers import gateway_parser

COMMAND_LINES = [
    [],
    ["--port", "3000"],
    ["--port=3000", "--host=0.0.0.0"],
    ["--host", "::1", "--port", " 8080 ", "--config", "alloy.toml", "--workers", "4", "--log-level", "DEBUG"],
    ["--port", "1", "--port", "2"],  # the last one wins
    ["--config=a=b.toml"],  # only the first "=" separates
    ["--port", "3_000"],  # int() reads it, both ways
    ["--port", "-1"],  # argparse's: a negative number is a value
    ["--por", "5"],  # argparse's: an abbreviation
]


@pytest.mark.parametrize("argv", COMMAND_LINES, ids=" ".join)
def test_the_quick_reading_means_what_argparse_reads(argv):
    assert vars(gateway_arguments(argv)) == vars(gateway_parser(GATEWAY_OPTIONS).parse_args(argv))


def test_well_formed_lines_are_read_quickly_and_the_rest_by_argparse():
    assert _read_quickly(["--port", "3000", "--log-level=INFO"]) is not None
    for argv in (["--help"], ["--version"], ["--port"], ["--por", "5"], ["--port", "x"], ["--log-level", "debug"], ["extra"]):
        assert _read_quickly(argv) is None, argv


@pytest.mark.parametrize("argv", [["--port", "abc"], ["--log-level", "debug"], ["--host"], ["--nope"], ["--config", "--port", "1"]])
def test_a_mistake_gets_argparse_usage_and_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit:
        gateway_arguments(argv)
    assert exit.value.code == 2
    assert capsys.readouterr().err.startswith("usage: alloy ")
