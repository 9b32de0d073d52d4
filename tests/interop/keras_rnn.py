"""Parity of the recurrent layers with real Keras: SimpleRNN, LSTM, GRU (reset_after true and
false), go_backwards, return_sequences, stacked layers, a Reshape in front, and Bidirectional
with every merge mode — predictions from Keras's weight files (both formats), then training
from the same weights with SGD and Adam (dropout 0: the masks are not Keras's)."""
import sys

import numpy as np
import keras
from keras import layers as L

import parity

h = parity.main_guard()
rng = np.random.default_rng(7)
T, F = 21, 5  # >= 20 time steps
x = rng.normal(size=(24, T, F)).astype(np.float32)


def randomize(m, scale=0.4):
    """Random weights everywhere (biases too), so every weight's layout is exercised."""
    m.set_weights([rng.normal(scale=scale, size=w.shape).astype(np.float32)
                   for w in m.get_weights()])
    return m


def seq(*ls, inp=(T, F)):
    return keras.Sequential([keras.Input(inp), *ls])


predict_cases = {
    "simple_rnn": seq(L.SimpleRNN(6), L.Dense(2)),
    "simple_rnn_relu_back_seq": seq(L.SimpleRNN(4, activation="relu", go_backwards=True,
                                                return_sequences=True, dropout=0.3)),
    "lstm": seq(L.LSTM(7, dropout=0.2, recurrent_dropout=0.2), L.Dense(3)),
    "lstm_back_seq": seq(L.LSTM(5, go_backwards=True, return_sequences=True)),
    "lstm_nobias_sig_relu": seq(L.LSTM(4, use_bias=False, unit_forget_bias=False,
                                       activation="relu", recurrent_activation="tanh")),
    "lstm_stacked": seq(L.LSTM(6, return_sequences=True), L.LSTM(4, return_sequences=True),
                        L.GRU(3), L.Dense(1)),
    "gru": seq(L.GRU(6), L.Dense(2)),
    "lstm_hard_sigmoid": seq(L.LSTM(4, recurrent_activation="hard_sigmoid")),
    "gru_reset_before": seq(L.GRU(5, reset_after=False, return_sequences=True)),
    "gru_reset_before_back": seq(L.GRU(4, reset_after=False, go_backwards=True)),
    "gru_back_seq": seq(L.GRU(4, go_backwards=True, return_sequences=True, use_bias=False)),
    "reshape_lstm": seq(L.Reshape((T, F)), L.LSTM(5), inp=(T * F,)),
    "bidi_concat_lstm": seq(L.Bidirectional(L.LSTM(4)), L.Dense(2)),
    "bidi_sum_gru_seq": seq(L.Bidirectional(L.GRU(3, return_sequences=True), merge_mode="sum")),
    "bidi_mul_simple": seq(L.Bidirectional(L.SimpleRNN(3), merge_mode="mul")),
    "bidi_ave_lstm_seq": seq(L.Bidirectional(L.LSTM(3, return_sequences=True),
                                             merge_mode="ave"), L.LSTM(2)),
    "bidi_concat_gru_rb_seq": seq(L.Bidirectional(L.GRU(3, reset_after=False,
                                                        return_sequences=True))),
}
for name, m in predict_cases.items():
    randomize(m)
    xx = x.reshape(len(x), -1) if name.startswith("reshape") else x
    h.check_predict(name, m, xx)

y = rng.normal(size=(24, 2)).astype(np.float32)
sgd = {"class_name": "SGD", "config": {"learning_rate": 0.05}}
adam = {"class_name": "Adam", "config": {"learning_rate": 0.01}}
train_cases = [
    ("lstm-sgd", lambda: seq(L.LSTM(6), L.Dense(2)), sgd),
    ("lstm-adam-seq", lambda: seq(L.LSTM(5, return_sequences=True), L.LSTM(4), L.Dense(2)), adam),
    ("gru-adam", lambda: seq(L.GRU(6, go_backwards=True), L.Dense(2)), adam),
    ("gru-rb-sgd", lambda: seq(L.GRU(5, reset_after=False), L.Dense(2)), sgd),
    ("simple_rnn-sgd", lambda: seq(L.SimpleRNN(6), L.Dense(2)), sgd),
    ("bidi-lstm-adam", lambda: seq(L.Bidirectional(L.LSTM(4)), L.Dense(2)), adam),
    # no L1 on the zero-initialised bias: JAX's d|x|/dx at 0 is 1, TensorFlow's (and ours) 0
    ("lstm-regularized-sgd", lambda: seq(L.LSTM(
        5, kernel_regularizer=keras.regularizers.L1L2(0.01, 0.02),
        recurrent_regularizer=keras.regularizers.L1(0.01),
        bias_regularizer=keras.regularizers.L2(0.02)), L.Dense(2)), sgd),
    ("lstm-constrained-adam", lambda: seq(L.LSTM(
        5, kernel_constraint=keras.constraints.MaxNorm(0.3),
        recurrent_constraint=keras.constraints.UnitNorm(),
        bias_constraint=keras.constraints.NonNeg()), L.Dense(2)), adam),
    ("bidi-gru-sum-sgd", lambda: seq(L.Bidirectional(L.GRU(3, return_sequences=True),
                                                     merge_mode="sum"), L.SimpleRNN(2)), sgd),
]
for i, (name, make, opt) in enumerate(train_cases):
    keras.utils.set_random_seed(10 + i)
    m = make()
    h.check_train(name, m, x, y, loss="mse", optimizer=opt, batch_size=8, epochs=2, tol=1e-5)
sys.exit(h.report())
