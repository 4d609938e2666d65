"""The command line answers --help everywhere and fails with one clear line."""
import pytest

from traction.cli import main

COMMANDS = ["synth videos", "synth trajectories", "extract", "pretrain", "finetune", "evaluate", "classify",
            "fuse", "visualize", "export", "models", "demo"]


@pytest.mark.parametrize("cmd", COMMANDS)
def test_help(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main(cmd.split() + ["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "usage: traction " + cmd in out


def test_top_level_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for cmd in {c.split()[0] for c in COMMANDS}:
        assert cmd in out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage" in capsys.readouterr().err
    assert main(["synth"]) == 2


def test_models_prints_parameter_counts(capsys):
    assert main(["models", "--num-classes", "174"]) == 0
    out = capsys.readouterr().out
    assert "traction_s" in out and "M parameters" in out
