"""``fastknn warmup`` (fastknn/warmup.py)."""

from fastknn._compilation import Compilation
from fastknn.cli import main
from fastknn.warmup import format_profile, warmup_steps


def test_warmup_compiles_every_step_with_a_progress_line_and_profiles(capsys):
    # Most kernels are compiled (or cached) by the tests before this one; the
    # command then mostly loads them, which is what a second warm-up does.
    assert main(["warmup", "--profile"]) == 0
    captured = capsys.readouterr()
    steps = warmup_steps()
    progress = [line for line in captured.err.splitlines() if line.startswith("[")]
    assert len(progress) == len(steps)
    assert progress[-1].startswith(f"[{len(steps)}/{len(steps)}]") and progress[-1].endswith(" s")
    assert "kernel compilations in" in captured.err
    assert captured.out.splitlines()[0].split()[:2] == ["own", "s"]
    assert captured.out.splitlines()[-1].endswith("all")


def test_profile_own_seconds_add_up_to_the_whole():
    compiled = [
        Compilation("topk._is_worse", "(float64,)", 0.5, 0.5, True),
        Compilation("topk._heap_push", "(...)", 2.0, 1.5, True),
        Compilation("topk._select_nearest_gemm", "(...)", 5.0, 3.0, False),
        Compilation("topk._heap_push", "(other)", 1.0, 1.0, False),
    ]
    table = format_profile(compiled).splitlines()
    rows = {line.split()[-1]: line.split() for line in table[1:-1]}
    assert table[1].split()[-1] == "topk._select_nearest_gemm"  # most expensive first
    assert rows["topk._heap_push"][:3] == ["2.50", "3.00", "2"]
    assert table[-1].split()[:2] == ["6.00", "4"]  # 0.5 + 2.5 + 3.0, four compilations


def test_help_shows_an_example(capsys):
    assert main(["warmup", "--help"]) == 0
    assert "fastknn warmup --profile" in capsys.readouterr().out
