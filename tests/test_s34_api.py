"""The Python API as a new user met it: the backward kernels check their arrays as the forward ones do; a
forward given x of another length than its cache names x; library functions name themselves and their Python
argument (windows, batchify, grad_norm, the model's methods, context_usage); `rnnlm.runs` after a bare
`import rnnlm`; `sweep run --help` gives a sweep's own --sample-words default."""
import subprocess
import sys

import numpy as np
import pytest

from rnnlm import gru, lstm, rnn
from rnnlm.data import batchify, windows
from rnnlm.model import ModelConfig, RNNModel

T, B, E, H = 5, 2, 3, 4
CELLS = {"rnn": (rnn, 1), "lstm": (lstm, 4), "gru": (gru, 3)}


def _forward(name):
    """A cell's filled cache, its weights and its backward's arrays (float32), ready to call."""
    mod, g = CELLS[name]
    rng = np.random.default_rng(0)
    f = np.float32
    x = rng.standard_normal((T, B, E)).astype(f)
    W_ih, W_hh = rng.standard_normal((g * H, E)).astype(f), rng.standard_normal((g * H, H)).astype(f) * 0.3
    b = np.zeros(g * H, f)
    h0 = np.zeros((B, H), f)
    cache = getattr(mod, f"{name}_alloc")(T, B, E, H, f)
    if name == "lstm":
        cache = lstm.lstm_forward(cache, x, h0, h0.copy(), W_ih, W_hh, b, b)
    elif name == "rnn":
        cache = rnn.rnn_forward(cache, x, h0, W_ih, W_hh, b, b, "tanh")
    else:
        cache = gru.gru_forward(cache, x, h0, W_ih, W_hh, b, b)
    d = {"dx": np.zeros((T, B, E), f), "dW_ih": np.zeros_like(W_ih), "dW_hh": np.zeros_like(W_hh),
         "db_ih": np.zeros(g * H, f), "db_hh": np.zeros(g * H, f), "dh0": np.zeros((B, H), f),
         "dhs": np.zeros((T, B, H), f), "dh_out": np.ones((T, B, H), f)}
    return cache, W_ih, W_hh, d


def _backward(name, cache, W_ih, W_hh, d):
    f = np.float32
    if name == "lstm":
        lstm.lstm_backward(d["dx"], d["dW_ih"], d["dW_hh"], d["db_ih"], d["db_hh"], d["dh0"],
                           d.get("dc0", np.zeros((B, H), f)), d.get("dgates", np.zeros((T, B, 4 * H), f)), d["dhs"],
                           d.get("dcs", np.zeros((T, B, H), f)), d["dh_out"], cache, W_ih, W_hh)
    elif name == "rnn":
        rnn.rnn_backward(d["dx"], d["dW_ih"], d["dW_hh"], d["db_ih"], d["db_hh"], d["dh0"],
                         d.get("dz", np.zeros((T, B, H), f)), d["dhs"], d["dh_out"], cache, W_ih, W_hh, "tanh")
    else:
        gru.gru_backward(d["dx"], d["dW_ih"], d["dW_hh"], d["db_ih"], d["db_hh"], d["dh0"],
                         d.get("dxa", np.zeros((T, B, 3 * H), f)), d.get("dha", np.zeros((T, B, 3 * H), f)),
                         d["dhs"], d["dh_out"], cache, W_ih, W_hh)


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
def test_the_backward_kernels_check_their_arrays(name):
    cache, W_ih, W_hh, d = _forward(name)
    _backward(name, cache, W_ih, W_hh, dict(d))     # right arrays: runs
    assert np.abs(d["dW_hh"]).sum() > 0
    g = CELLS[name][1]
    scratch = {"lstm": "dgates", "rnn": "dz", "gru": "dxa"}[name]
    bad = {scratch: np.zeros((T, B, g * H + 1), np.float32)}
    with pytest.raises(ValueError, match=rf"^{name}_backward: {scratch} must have shape \({T}, {B}, {g * H}\), "
                                         rf"got \({T}, {B}, {g * H + 1}\)$"):
        _backward(name, cache, W_ih, W_hh, {**d, **bad})
    with pytest.raises(ValueError, match=rf"^{name}_backward: dW_ih must be float32 \(the cache's dtype\), got "
                                         "float64"):
        _backward(name, cache, W_ih, W_hh, {**d, "dW_ih": np.zeros((g * H, E))})
    with pytest.raises(TypeError, match=rf"^{name}_backward: dh_out must be a numpy array, got list"):
        _backward(name, cache, W_ih, W_hh, {**d, "dh_out": [[0.0]]})
    fresh = getattr(CELLS[name][0], f"{name}_alloc")(T, B, E, H, np.float32)
    with pytest.raises(TypeError, match=rf"^{name}_backward: cache.x is NoneType: run the forward kernel on this "
                                        "cache first"):
        _backward(name, fresh, W_ih, W_hh, d)


def test_a_forward_given_x_of_another_length_than_its_cache_names_x():
    f = np.float32
    with pytest.raises(ValueError, match=r"^lstm_forward: x must have shape \(5, 2, 3\), got \(4, 2, 3\)$"):
        lstm.lstm_forward(lstm.lstm_alloc(T, B, E, H, f), np.zeros((4, B, E), f), np.zeros((B, H), f),
                          np.zeros((B, H), f), np.zeros((4 * H, E), f), np.zeros((4 * H, H), f), np.zeros(4 * H, f),
                          np.zeros(4 * H, f))


def test_windows_and_batchify_name_themselves_and_their_argument():
    stream = batchify(np.arange(20), 2)
    with pytest.raises(ValueError, match=r"^windows: bptt must be an int >= 1, got 0$"):
        windows(stream, 0)              # at the call, not at the first window
    with pytest.raises(TypeError, match=r"^windows: bptt must be an int >= 1, got 5\.0 \(float\)$"):
        windows(stream, 5.0)
    with pytest.raises(ValueError, match=r"^windows: start must be an int >= 0, got -1$"):
        windows(stream, 5, start=-1)
    with pytest.raises(ValueError, match=r"^batchify: batch_size must be an int >= 1, got 0$"):
        batchify(np.arange(20), 0)
    assert [pos for pos, _, _ in windows(stream, 4)] == [0, 4, 8]
    assert [x.shape[0] for _, x, _ in windows(stream, 4, start=4)] == [4, 1]     # 10 rows: the last target is row 9


def test_gradient_helpers_refuse_a_list():
    from rnnlm import optim
    for fn, args in ((optim.grad_norm, ()), (optim.clip_grad_norm, (1.0,)), (optim.clip_grad_value, (1.0,))):
        with pytest.raises(TypeError, match=rf"^{fn.__name__}: grads must be a dict of name -> gradient array "
                                            r"\(as RNNModel.loss_and_grads returns\), got list$"):
            fn([np.ones(3)], *args)


@pytest.mark.parametrize("method", ["loss", "loss_and_grads", "bptt", "forward_states", "train_grads"])
def test_the_models_methods_name_themselves_in_their_errors(method):
    m = RNNModel(ModelConfig(vocab_size=20, hidden=8, emsize=8, cell="gru", dropout=0.0))
    x = np.zeros((5, 3), np.int64)
    call = getattr(m, method)
    with pytest.raises(ValueError, match=rf"^{method}: inputs must be a non-empty 2-D integer array, got shape "
                                         r"\(5, 3\) dtype float32$"):
        call(x.astype(np.float32), None) if method == "forward_states" else call(x.astype(np.float32), x)
    if method != "forward_states":
        with pytest.raises(ValueError, match=rf"^{method}: targets shape \(4, 3\) != inputs shape \(5, 3\)$"):
            call(x, x[:4])
    with pytest.raises(ValueError, match=r"^step_logprobs: tokens has token ids outside \[0, 20\): min 0, max 20$"):
        m.step_logprobs(np.array([0, 20]))


def test_context_usage_given_the_commands_distances_says_how_to_read_them():
    from rnnlm import probes
    m = RNNModel(ModelConfig(vocab_size=20, hidden=8, emsize=8, cell="gru", dropout=0.0))
    with pytest.raises(TypeError, match=r"^context_usage: distances must be a list of integers, got the string "
                                        r"'1\.\.5' \(parse_distances\('1\.\.5'\) reads the command's form\)$"):
        probes.context_usage(m, np.zeros(400, np.int64), "1..5", window=20)


def test_a_bare_import_reaches_the_submodules_by_name_and_stays_light():
    code = ("import sys, rnnlm; assert 'numba' not in sys.modules; assert rnnlm.runs.load_model.__name__ == "
            "'load_model'; assert rnnlm.sweep.run_sweep.__name__ == 'run_sweep'\n"
            "try:\n    rnnlm.no_such_thing\nexcept AttributeError as e:\n    print(e)\n"
            "print(hasattr(rnnlm, '__wrapped__'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "module 'rnnlm' has no attribute 'no_such_thing'\nFalse\n"


def test_sweep_run_help_gives_a_sweeps_own_sample_words_default(capsys):
    from rnnlm.cli import main
    with pytest.raises(SystemExit):
        main(["sweep", "run", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--sample-words V[,V...] words sampled from the best model at the end; 0 = none (default 0 in a sweep)" \
        in out
    assert "(default 60)" not in out


def test_generate_text_warns_when_a_sample_holds_fewer_words_than_asked():
    from rnnlm.sample import ShortSampleWarning, generate_text
    from rnnlm.vocab import Vocab
    from test_sample import _OnlyCommas
    vocab = Vocab(["<unk>", "<eos>", ",", "casa"])
    with pytest.warns(ShortSampleWarning) as seen:
        text = generate_text(_OnlyCommas(), vocab, words=5, temperature=0)[0]
    assert text == "," * 150
    assert str(seen[0].message) == (
        "generate_text: the sample holds 0 of the 5 words asked: the model drew 150 tokens, mostly punctuation or sentence "
        "ends, the most generate draws (10 per word asked + 100); a better-trained checkpoint or a temperature "
        "above 0 (0 always draws the most likely token, so it repeats the same punctuation) may help")


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
def test_the_backward_kernels_refuse_outputs_they_could_not_write_into(name):
    cache, W_ih, W_hh, d = _forward(name)
    view = np.zeros((B, T, E), np.float32).transpose(1, 0, 2)      # (T, B, E), but a transposed view
    with pytest.raises(ValueError, match=rf"^{name}_backward: dx must be C-contiguous \(the kernel writes into it"):
        _backward(name, cache, W_ih, W_hh, {**d, "dx": view})
    frozen = np.zeros((B, H), np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match=rf"^{name}_backward: dh0 is read-only; the kernel writes into it"):
        _backward(name, cache, W_ih, W_hh, {**d, "dh0": frozen})


@pytest.mark.parametrize("bounds", [[0, 2, 99], [0, 3], [1, 4], [0, 2, 2, 4], [[0, 4]]])
def test_the_kernels_refuse_unit_bounds_that_do_not_cover_the_units(bounds):
    cache, W_ih, W_hh, d = _forward("lstm")
    f = np.float32
    with pytest.raises(ValueError, match=r"^lstm_backward: bounds must be increasing integer unit boundaries from 0 "
                                         r"to H = 4 \(paths.unit_bounds\(H\)\), got "):
        lstm.lstm_backward(d["dx"], d["dW_ih"], d["dW_hh"], d["db_ih"], d["db_hh"], d["dh0"], np.zeros((B, H), f),
                           np.zeros((T, B, 4 * H), f), d["dhs"], np.zeros((T, B, H), f), d["dh_out"], cache, W_ih,
                           W_hh, bounds=np.array(bounds))
    with pytest.raises(ValueError, match=r"^rnn_forward: bounds must be increasing"):
        rnn.rnn_forward(rnn.rnn_alloc(T, B, E, H, f), np.zeros((T, B, E), f), np.zeros((B, H), f),
                        np.zeros((H, E), f), np.zeros((H, H), f), np.zeros(H, f), np.zeros(H, f), "tanh",
                        bounds=np.array(bounds))
