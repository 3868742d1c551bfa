"""rnnlm: recurrent language models with hand-written backpropagation through time.

Vanilla RNN, LSTM and GRU cells in Numba, trained on Portuguese text, with
instruments that measure vanishing and exploding gradients.
"""
__version__ = "0.2.0"
