"""A stop in a command that writes no files says so (not a bare "interrupted"); a figure is written whole or
not at all (a Ctrl-C while it is drawn or saved keeps the one drawn before)."""
import pytest

from rnnlm import cli, plots
from rnnlm.errors import Terminated


def _stopping(monkeypatch, command, exc):
    def run(args):
        raise exc
    monkeypatch.setattr(cli, "COMMANDS", [(n, add, run if n == command else r) for n, add, r in cli.COMMANDS])


@pytest.mark.parametrize("argv, exc, status, line", [
    (["gradcheck"], KeyboardInterrupt(), 130,
     "interrupted: gradcheck writes no files, so nothing was lost; run it again for its result"),
    (["bench", "--config", "tiny"], Terminated(), 143,
     "terminated: bench writes no files; the rows it finished, if any, are printed above"),
    (["baseline", "--corpus", "sintetico"], KeyboardInterrupt(), 130,
     "interrupted: baseline writes no files, so nothing was lost; run it again for its result"),
    (["corpus", "info", "machado"], KeyboardInterrupt(), 130,
     "interrupted: corpus info writes no files, so nothing was lost; run it again for its result"),
    (["corpus", "download", "machado"], KeyboardInterrupt(), 130,
     "interrupted: the files fetched and verified so far are kept; run `corpus download machado` again "
     "(without --force) to fetch the rest"),
    (["corpus", "download", "machado", "--corpora-dir", "/tmp/c"], KeyboardInterrupt(), 130,
     "interrupted: the files fetched and verified so far are kept; run `corpus download machado --corpora-dir "
     "/tmp/c` again (without --force) to fetch the rest"),
])
def test_a_stop_in_a_command_that_writes_nothing_says_nothing_was_lost(monkeypatch, capsys, argv, exc, status,
                                                                        line):
    _stopping(monkeypatch, argv[0], exc)
    assert cli.main(argv) == status
    assert capsys.readouterr().err == line + "\n"


def test_a_stop_that_says_its_own_line_keeps_it(monkeypatch, capsys):
    exc = KeyboardInterrupt()
    exc.line = "interrupted while printing the report: the result is saved in x.json"
    _stopping(monkeypatch, "gradcheck", exc)
    assert cli.main(["gradcheck"]) == 130
    assert capsys.readouterr().err == exc.line + "\n"


def _figure():
    plt = plots._pyplot()
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3], [3, 1, 2])
    return fig


def test_a_figure_is_saved_as_a_whole_png_and_svg_the_same_bytes_each_time(tmp_path):
    first = plots._save(_figure(), tmp_path / "a")
    png, svg = first.read_bytes(), first.with_suffix(".svg").read_bytes()
    assert first == tmp_path / "a.png" and png.startswith(b"\x89PNG\r\n") and b"<svg" in svg
    plots._save(_figure(), tmp_path / "a.svg")
    assert first.with_suffix(".svg").read_bytes() == svg       # no date, fixed ids
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "a.svg"]


@pytest.mark.parametrize("fails_on", ["png", "svg", "write"])
def test_a_stop_while_a_figure_is_drawn_or_written_keeps_the_figures_drawn_before(tmp_path, monkeypatch,
                                                                                  fails_on):
    old_png, old_svg = (f"old {kind}, {plots.FIGURE_MARK}".encode() for kind in ("png", "svg"))   # (ours: marked)
    (tmp_path / "a.png").write_bytes(old_png)
    (tmp_path / "a.svg").write_bytes(old_svg)
    fig = _figure()
    savefig = fig.savefig

    def stopped(target, format=None, **kwargs):
        if format == fails_on:
            raise KeyboardInterrupt
        return savefig(target, format=format, **kwargs)
    monkeypatch.setattr(fig, "savefig", stopped)
    if fails_on == "write":     # the first file's write itself is cut
        import rnnlm.fileio as fileio
        real = fileio.atomic_write

        def cut(path, write_fn, **kw):
            def half(f):
                f.write(b"half")
                raise KeyboardInterrupt
            return real(path, half, **kw)
        monkeypatch.setattr(fileio, "atomic_write", cut)
    with pytest.raises(KeyboardInterrupt):
        plots._save(fig, tmp_path / "a")
    assert (tmp_path / "a.png").read_bytes() == old_png
    assert (tmp_path / "a.svg").read_bytes() == old_svg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "a.svg"]     # no temporary file left
