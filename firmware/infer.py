# The int8 classifier, whichever API the firmware has:
#   ml.Model(path).predict([img])  firmware 4.5.6 and later (there `tf` is only an alias of `ml`)
#   tf.load(path) / net.classify()  firmware up to 4.5.5
# Both resize the window to the model input with bilinear sampling and feed pixel - 128 to an int8
# model whatever its input scale says, so the model must be int8 with scale 1/255, zero point -128
# (contract 1). Anything else is refused: a wrong model must never drive the door.

import gc

try:
    import hashlib
except ImportError:
    import uhashlib as hashlib
import binascii

CHUNK = 4096


def file_sha256(path):
    digest = hashlib.sha256()
    buf = bytearray(CHUNK)
    mv = memoryview(buf)
    with open(path, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            digest.update(mv[:n])
    return binascii.hexlify(digest.digest()).decode()


def read_labels(path):
    with open(path) as f:
        return [line.strip() for line in f.read().split("\n") if line.strip()]


def check_labels(cfg, file_labels):
    """The label order is what maps outputs to classes: config and labels file must agree."""
    if file_labels is not None and file_labels != cfg["labels"]:
        return "labels file " + cfg["labels_path"] + " does not match config labels"
    return None


def check_input(dtype, shape, scale, zero_point):
    """None if the input tensor is what the board feeds (int8, HxWx3, scale 1/255, zp -128)."""
    if dtype not in ("b", "int8"):
        return "model input must be int8, not " + str(dtype)
    if shape is not None and (len(shape) != 4 or shape[3] != 3):
        return "model input must be 1xHxWx3, not " + str(shape)
    if scale is not None and (scale * 255.0 < 0.99 or scale * 255.0 > 1.01 or zero_point != -128):
        return "model input quantization must be scale 1/255, zero point -128"
    return None


def _tensor0(value):
    """ml attributes hold one entry per tensor, ((1, 32, 32, 3),) or (0.0039,): take the first."""
    if isinstance(value, (tuple, list)) and value:
        if len(value) == 1 or isinstance(value[0], (tuple, list)):
            return value[0]
    return value


class Model:
    """load(): raises on any problem. predict(img): returns P(positive), sets self.label."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.labels = cfg["labels"]
        self.positive = self.labels.index(cfg["positive_label"])
        self.softmax = cfg["output_kind"] == "softmax"
        self.none_label = cfg.get("none_label", "none")  # may or may not be one of the model's classes
        self.label = self.labels[0]
        self.sha256 = ""
        self.api = ""
        self.net = None
        self.first = None
        self.inputs = [None]
        self.interpreter_failed = False  # the last load failed inside ml.Model / tf.load (not before)
        self.loaded_once = False  # a load succeeded in this boot: the model itself is good (recovery.py)

    def load(self):
        cfg = self.cfg
        self.interpreter_failed = False
        path = cfg["model_path"]
        self.sha256 = file_sha256(path)  # OSError if missing
        want = cfg["model_sha256"]
        if want and want != self.sha256:
            raise ValueError("model sha256 " + self.sha256[:12] + " is not the deployed " + want[:12])
        try:
            file_labels = read_labels(cfg["labels_path"])
        except OSError:
            file_labels = None
        problem = check_labels(cfg, file_labels)
        if problem:
            raise ValueError(problem)
        gc.collect()
        try:
            import ml
        except ImportError:
            ml = None
        if ml is not None and hasattr(ml, "Model"):
            self._load_ml(ml, path)
        else:
            import tf
            self._load_tf(tf, path)
        self.loaded_once = True
        gc.collect()

    def _load_ml(self, ml, path):
        try:
            net = ml.Model(path, load_to_fb=self.cfg["model_load_to_fb"])
        except Exception:
            self.interpreter_failed = True  # on 4.5.6-4.5.9 this leaked fb_alloc (recovery.py)
            raise
        problem = check_input(_tensor0(net.input_dtype), _tensor0(net.input_shape),
                              _tensor0(net.input_scale), _tensor0(net.input_zero_point))
        if problem:
            raise ValueError(problem)
        self._check_outputs(_tensor0(getattr(net, "output_shape", None)))
        self.first = None
        self.net = net
        self.api = "ml"

    def _load_tf(self, tf, path):
        try:
            net = tf.load(path, load_to_fb=self.cfg["model_load_to_fb"])
        except Exception:
            self.interpreter_failed = True
            raise
        shape = (1, net.input_height(), net.input_width(), net.input_channels())
        problem = check_input(net.input_datatype(), shape, net.input_scale(), net.input_zero_point())
        if problem:
            raise ValueError(problem)
        self.net = net
        self.api = "tf"

    def _check_outputs(self, shape):
        if not shape:
            return
        n = 1
        for d in shape:
            n *= d
        if self.softmax and n != len(self.labels):
            raise ValueError("softmax model has " + str(n) + " outputs for " + str(len(self.labels)) + " labels")
        if not self.softmax and n != 1:
            raise ValueError("sigmoid model must have 1 output, not " + str(n))

    def predict(self, img):
        if self.api == "ml":
            inputs = self.inputs
            inputs[0] = img  # the one-element list predict() takes, made once
            out = self.net.predict(inputs)[0]
            inputs[0] = None
            if not self.softmax:  # read the one value in place: no list per frame
                if self.first is None:  # the index of the first element, from the array's own shape, once
                    ndim = len(out.shape)
                    self.first = 0 if ndim == 1 else (0,) * ndim
                return self.judge_score(float(out[self.first]))
            out = out.flatten().tolist()
        else:
            out = self.net.classify(img)[0].output()
        return self.judge(out)

    def judge(self, out):
        """out: the model's outputs, flat. Sets self.label (what the log records), returns P(positive)."""
        if self.softmax:
            best = 0
            for i in range(len(out)):
                if out[i] > out[best]:
                    best = i
            self.label = self.labels[best]
            return out[self.positive]
        return self.judge_score(out[0])

    def judge_presence(self, gate_reason):
        """After predict(): True when a face is there, i.e. the presence gate let the frame through
        (gate_reason None) and the model's best class is not its none class. Otherwise the frame is
        logged as none_label and returns False."""
        if gate_reason is None and self.label != self.none_label:
            return True
        self.label = self.none_label
        return False

    def judge_score(self, score):
        """The sigmoid case of judge(): score is P(positive)."""
        if score >= 0.5:
            self.label = self.labels[self.positive]
        else:
            self.label = self.labels[1 - self.positive] if len(self.labels) == 2 else "-"
        return score
