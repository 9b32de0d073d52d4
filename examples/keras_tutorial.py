"""The Keras dropout tutorial, trained by dptrain on 2 MPI ranks: two lines changed (marked).
Run: python examples/keras_tutorial.py   (after pip install ./python; Keras 3 with any backend)"""
import numpy as np
import keras
from keras import layers

import dptrain  # changed line 1 of 2

# synthetic data, as in the tutorial: 20 uniform features, random 0/1 labels
X_train = np.random.random((1000, 20)).astype("float32")
y_train = np.random.randint(2, size=(1000, 1))

model = keras.Sequential()
model.add(keras.Input(shape=(20,)))
model.add(layers.Dense(64, activation="relu"))
model.add(layers.Dropout(0.5))
model.add(layers.Dense(64, activation="relu"))
model.add(layers.Dropout(0.5))
model.add(layers.Dense(1, activation="sigmoid"))
model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])

# model.fit(X_train, y_train, epochs=20, batch_size=32, validation_split=0.2)
history = dptrain.fit(model, X_train, y_train, epochs=20, batch_size=32,
                      validation_split=0.2, ranks=2)  # changed line 2 of 2

print("history keys:", sorted(history.history), "epochs:", len(history.epoch))
print("final val_accuracy: %.4f" % history.history["val_accuracy"][-1])
print("run directory:", history.run_dir)
