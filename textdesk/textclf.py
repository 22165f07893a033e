"""A small, generic, pure-Python text classifier.

No numpy, no network, no model files: a :class:`TextClassifier` is trained from
``(text, label)`` pairs in well under a second for a few thousand short texts and
can be serialized to / restored from JSON.

Model
-----
* Text is normalized with :func:`normalize_text` (lowercase, punctuation stripped,
  common SMS slang expanded, e-mails / URLs / phone numbers / money replaced by
  placeholder tokens).
* Features are two blocks, each TF-IDF weighted (sublinear tf, smoothed idf) and
  L2-normalized separately, then scaled by a per-block weight:

  - *word* block: lowercase word unigrams and bigrams (bigrams include sentence
    start/end markers, so "hi" alone differs from "hi can I ...");
  - *char* block: character n-grams (3-5 by default) taken inside word
    boundaries (each word padded with spaces), which gives typo tolerance.

* The default model is multinomial logistic regression trained with plain SGD
  (fixed seed, shuffled each epoch, decaying step size, L2 penalty via a lazily
  applied global scale).  A complement naive Bayes model (Rennie et al. 2003)
  is also available via ``model="cnb"``; its scores are turned into
  probabilities with a softmax whose temperature is fitted on the training set.

Everything is deterministic: the same texts, labels and hyperparameters always
produce the same model, independent of ``PYTHONHASHSEED``.

Nothing in here knows about any particular task; the intent classifier and the
prompt-injection classifier are both thin layers over :class:`TextClassifier`.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from operator import itemgetter, mul
from typing import Any

__all__ = ["SLANG", "Hyper", "TextClassifier", "evaluate", "normalize_text"]

FORMAT_VERSION = 1

# ---------------------------------------------------------------------------
# Normalization
# ---------------------------------------------------------------------------

#: Common SMS / chat abbreviations -> expansion.  Applied per token after
#: lowercasing and punctuation stripping (apostrophes are removed first, so
#: "can't" arrives here as "cant").  Keys must be single tokens; values may be
#: several words.  This is data: extend it freely.
SLANG: dict[str, str] = {
    # pronouns / verbs
    "u": "you",
    "ya": "you",
    "yu": "you",
    "ur": "your",
    "urs": "yours",
    "r": "are",
    "im": "i am",
    "ive": "i have",
    "id": "i would",
    "ill": "i will",
    "wanna": "want to",
    "gonna": "going to",
    "gotta": "got to",
    "hafta": "have to",
    "lemme": "let me",
    "gimme": "give me",
    "dunno": "do not know",
    "idk": "i do not know",
    "imma": "i am going to",
    "ima": "i am going to",
    "wud": "would",
    "wld": "would",
    "cud": "could",
    "cld": "could",
    "shud": "should",
    "shld": "should",
    "cn": "can",
    "kno": "know",
    "knw": "know",
    "luv": "love",
    "c": "see",
    # politeness / acknowledgements
    "pls": "please",
    "plz": "please",
    "plez": "please",
    "pleas": "please",
    "pleasee": "please",
    "plss": "please",
    "plzz": "please",
    "thx": "thanks",
    "thnx": "thanks",
    "thanx": "thanks",
    "thnks": "thanks",
    "thks": "thanks",
    "tks": "thanks",
    "tx": "thanks",
    "ty": "thank you",
    "tysm": "thank you so much",
    "tyvm": "thank you very much",
    "np": "no problem",
    "k": "ok",
    "kk": "ok",
    "okk": "ok",
    "okay": "ok",
    "okey": "ok",
    "okie": "ok",
    "yea": "yes",
    "yeah": "yes",
    "yep": "yes",
    "yup": "yes",
    "ye": "yes",
    "ya'll": "you all",
    "yall": "you all",
    "nah": "no",
    "nope": "no",
    "sry": "sorry",
    "srry": "sorry",
    "soz": "sorry",
    "gr8": "great",
    "cya": "see you",
    "l8r": "later",
    "ltr": "later",
    "gm": "good morning",
    "gn": "good night",
    "hii": "hi",
    "hiya": "hi",
    "heyy": "hey",
    "helo": "hello",
    "hello": "hello",
    "lol": "lol",
    "btw": "by the way",
    "lmk": "let me know",
    "nvm": "never mind",
    "fyi": "for your information",
    "omw": "on my way",
    "asap": "as soon as possible",
    "rn": "right now",
    "atm": "at the moment",
    "tbh": "to be honest",
    "bc": "because",
    "b/c": "because",
    "cuz": "because",
    "coz": "because",
    "cos": "because",
    "bcuz": "because",
    "bcoz": "because",
    "tho": "though",
    "thru": "through",
    "abt": "about",
    "bout": "about",
    "b4": "before",
    "w": "with",
    "wo": "without",
    "n": "and",
    "nd": "and",
    "y": "why",
    "wat": "what",
    "wut": "what",
    "wht": "what",
    "whn": "when",
    "wen": "when",
    "whr": "where",
    "hw": "how",
    "sum1": "someone",
    "some1": "someone",
    "any1": "anyone",
    "ppl": "people",
    "msg": "message",
    "msgs": "messages",
    "txt": "text",
    "txts": "texts",
    "pic": "picture",
    "pics": "pictures",
    "ph": "phone",
    "fone": "phone",
    "num": "number",
    "no.": "number",
    "info": "information",
    "convo": "conversation",
    "mgr": "manager",
    "dr": "doctor",
    "acct": "account",
    "amt": "amount",
    "pmt": "payment",
    "pymt": "payment",
    "bday": "birthday",
    "prob": "probably",
    "probs": "probably",
    "def": "definitely",
    "defo": "definitely",
    "obv": "obviously",
    "diff": "different",
    "avail": "available",
    "approx": "approximately",
    "abt.": "about",
    # time
    "tmrw": "tomorrow",
    "tmrrw": "tomorrow",
    "tmr": "tomorrow",
    "tmw": "tomorrow",
    "tmro": "tomorrow",
    "tom": "tomorrow",
    "tomo": "tomorrow",
    "tomoz": "tomorrow",
    "tommorow": "tomorrow",
    "tommorrow": "tomorrow",
    "tomorow": "tomorrow",
    "tmorrow": "tomorrow",
    "2moro": "tomorrow",
    "2morrow": "tomorrow",
    "2mrw": "tomorrow",
    "2day": "today",
    "tdy": "today",
    "2nite": "tonight",
    "2night": "tonight",
    "tonite": "tonight",
    "nite": "night",
    "wk": "week",
    "wks": "weeks",
    "wkend": "weekend",
    "wknd": "weekend",
    "hr": "hour",
    "hrs": "hours",
    "min": "minutes",
    "mins": "minutes",
    "sec": "second",
    "secs": "seconds",
    "nxt": "next",
    "mon": "monday",
    "tue": "tuesday",
    "tues": "tuesday",
    "weds": "wednesday",
    "thu": "thursday",
    "thur": "thursday",
    "thurs": "thursday",
    "fri": "friday",
    "sat": "saturday",
    "sun": "sunday",
    "jan": "january",
    "feb": "february",
    "aug": "august",
    "sept": "september",
    "oct": "october",
    "nov": "november",
    "dec": "december",
    # appointments
    "appt": "appointment",
    "appts": "appointments",
    "apt": "appointment",
    "apts": "appointments",
    "appnt": "appointment",
    "appmt": "appointment",
    "apmt": "appointment",
    "apointment": "appointment",
    "appointmnt": "appointment",
    "appoitment": "appointment",
    "resched": "reschedule",
    "rescheduel": "reschedule",
    "reshedule": "reschedule",
    "cancle": "cancel",
    "cancell": "cancel",
    "cxl": "cancel",
    "canx": "cancel",
}

_APOSTROPHES = re.compile(r"['\u2018\u2019\u02bc`´]")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(r"(?:https?://|www\.)\S+")
_PHONE = re.compile(r"(?<!\w)\+?\d[\d\s().-]{6,}\d(?!\w)")
_MONEY = re.compile(r"[$£€]\s?\d+(?:[.,]\d+)?|\d+(?:[.,]\d+)?\s?(?:dollars|bucks|usd|eur|gbp)\b")
_SLASH_WORDS = re.compile(r"\b(w/o|w/|b/c|a/c)(?=\s|$)")
_NON_WORD = re.compile(r"[^a-z0-9]+")
_REPEATS = re.compile(r"([a-z])\1{2,}")
_SLASH_MAP = {"w/o": "without", "w/": "with", "b/c": "because", "a/c": "ac"}


def normalize_text(text: str, slang: Mapping[str, str] | None = None) -> str:
    """Normalize free-form (SMS-style) text for classification.

    Lowercases, removes apostrophes ("don't" -> "dont"), replaces e-mail
    addresses, URLs, phone numbers and money amounts with the placeholder
    tokens ``emailaddr``, ``urladdr``, ``phonenum`` and ``moneyamt``, squeezes
    runs of 3+ repeated letters to two ("pleaseee" -> "pleasee"), strips all
    other punctuation, expands SMS slang (``u`` -> ``you``, ``tmrw`` ->
    ``tomorrow``, ``appt`` -> ``appointment`` ...) and collapses whitespace.

    >>> normalize_text("Can u move my APPT to tmrw @ 3pm?? thx!!")
    'can you move my appointment to tomorrow 3pm thanks'
    """
    table = SLANG if slang is None else slang
    s = text.lower()
    s = _APOSTROPHES.sub("", s)
    s = _EMAIL.sub(" emailaddr ", s)
    s = _URL.sub(" urladdr ", s)
    s = _MONEY.sub(" moneyamt ", s)
    s = _PHONE.sub(" phonenum ", s)
    s = _SLASH_WORDS.sub(lambda m: " " + _SLASH_MAP[m.group(1)] + " ", s)
    s = s.replace("&", " and ")
    s = _NON_WORD.sub(" ", s)
    s = _REPEATS.sub(r"\1\1", s)
    out: list[str] = []
    for tok in s.split():
        out.append(table.get(tok, tok))
    return " ".join(out)


# ---------------------------------------------------------------------------
# Hyperparameters and featurization
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Hyper:
    """Hyperparameters for :meth:`TextClassifier.train` (all keyword-settable)."""

    model: str = "logreg"  # "logreg" | "cnb"
    char_min: int = 3
    char_max: int = 5
    word_ngrams: int = 2  # 1 = unigrams only, 2 = + bigrams
    word_weight: float = 1.0  # scale of the L2-normalized word block
    char_weight: float = 1.0  # scale of the L2-normalized char block
    digits_to_zero: bool = True  # "3pm" and "5pm" share features
    min_df: int = 1  # drop features seen in fewer documents
    sublinear_tf: bool = True
    # logistic regression
    epochs: int = 2
    lr: float = 2.0
    lr_decay: float = 0.5  # lr for epoch e = lr / (1 + lr_decay * e)
    l2: float = 1e-5
    class_weight: str = "none"  # "none" | "balanced" | "sqrt"
    update_eps: float = 0.02  # skip per-class updates with |gradient| below this (speed)
    seed: int = 13
    # complement naive Bayes
    alpha: float = 0.3


_DIGIT = re.compile(r"\d")


def _raw_features(norm: str, h: Hyper) -> tuple[dict[str, float], dict[str, float]]:
    """Raw term counts for the word block and the char block of a normalized text."""
    toks = norm.split()
    if h.digits_to_zero:
        toks = [_DIGIT.sub("0", t) for t in toks]
    words: dict[str, float] = {}
    chars: dict[str, float] = {}
    for t in toks:
        key = "w:" + t
        words[key] = words.get(key, 0.0) + 1.0
    if h.word_ngrams >= 2 and toks:
        padded = ["<s>", *toks, "</s>"]
        for a, b in itertools.pairwise(padded):
            key = "b:" + a + " " + b
            words[key] = words.get(key, 0.0) + 1.0
    lo, hi = h.char_min, h.char_max
    for t in toks:
        w = " " + t + " "
        lw = len(w)
        for n in range(lo, hi + 1):
            if lw <= n:
                # short word: count the whole padded word once
                chars[w] = chars.get(w, 0.0) + 1.0
                break
            for i in range(lw - n + 1):
                key = w[i : i + n]
                chars[key] = chars.get(key, 0.0) + 1.0
    return words, chars


def _tf(counts: dict[str, float], sublinear: bool) -> dict[str, float]:
    if not sublinear:
        return counts
    return {k: 1.0 + math.log(v) for k, v in counts.items()}


def _getter(idx: Sequence[int]) -> Callable[[Sequence[float]], tuple[float, ...]]:
    """A C-speed gather: ``_getter(idx)(row) == tuple(row[j] for j in idx)``."""
    if len(idx) >= 2:
        return itemgetter(*idx)
    if len(idx) == 1:
        j = idx[0]
        return lambda row: (row[j],)
    return lambda row: ()


def _softmax(scores: Sequence[float]) -> list[float]:
    m = max(scores)
    exps = [math.exp(s - m) for s in scores]
    z = sum(exps)
    return [e / z for e in exps]


@dataclass
class _Vectorizer:
    """Maps texts to sparse (indices, values) vectors with fixed vocab and idf."""

    hyper: Hyper
    vocab: dict[str, int] = field(default_factory=dict)
    idf: list[float] = field(default_factory=list)
    is_word: list[bool] = field(default_factory=list)

    @classmethod
    def fit(
        cls, norms: Sequence[str], h: Hyper
    ) -> tuple[_Vectorizer, list[tuple[dict[str, float], dict[str, float]]]]:
        raws = [_raw_features(n, h) for n in norms]
        df: dict[str, int] = {}
        for words, chars in raws:
            for k in words:
                df[k] = df.get(k, 0) + 1
            for k in chars:
                df[k] = df.get(k, 0) + 1
        vec = cls(hyper=h)
        n_docs = len(norms)
        # Insertion order of df follows document order -> deterministic indices.
        for k, d in df.items():
            if d >= h.min_df:
                vec.vocab[k] = len(vec.idf)
                vec.idf.append(math.log((1.0 + n_docs) / (1.0 + d)) + 1.0)
                vec.is_word.append(k.startswith(("w:", "b:")))
        return vec, raws

    def transform_raw(self, raw: tuple[dict[str, float], dict[str, float]]) -> tuple[list[int], list[float]]:
        h = self.hyper
        idx: list[int] = []
        val: list[float] = []
        for block, weight in ((raw[0], h.word_weight), (raw[1], h.char_weight)):
            if weight <= 0.0:
                continue
            b_idx: list[int] = []
            b_val: list[float] = []
            vocab = self.vocab
            idf = self.idf
            for k, v in _tf(block, h.sublinear_tf).items():
                j = vocab.get(k)
                if j is not None:
                    b_idx.append(j)
                    b_val.append(v * idf[j])
            norm = math.sqrt(sum(x * x for x in b_val))
            if norm > 0.0:
                scale = weight / norm
                idx.extend(b_idx)
                val.extend(x * scale for x in b_val)
        return idx, val

    def transform(self, text: str, slang: Mapping[str, str] | None = None) -> tuple[list[int], list[float]]:
        return self.transform_raw(_raw_features(normalize_text(text, slang), self.hyper))


# ---------------------------------------------------------------------------
# Classifier
# ---------------------------------------------------------------------------


class TextClassifier:
    """Generic multi-class text classifier (see module docstring).

    Build one with :meth:`train` or :meth:`from_json`; query it with
    :meth:`predict` / :meth:`predict_proba`.
    """

    def __init__(
        self,
        labels: list[str],
        vectorizer: _Vectorizer,
        weights: list[list[float]],
        bias: list[float],
        temperature: float = 1.0,
    ) -> None:
        self.labels = labels
        self._vec = vectorizer
        self._weights = weights  # one dense row per label, indexed by feature id
        self._bias = bias
        self._temperature = temperature

    # -- properties -------------------------------------------------------------

    @property
    def hyper(self) -> Hyper:
        return self._vec.hyper

    @property
    def n_features(self) -> int:
        return len(self._vec.idf)

    # -- training ---------------------------------------------------------------

    @classmethod
    def train(cls, texts: Sequence[str], labels: Sequence[str], **hyper: Any) -> TextClassifier:
        """Train a classifier on parallel sequences of texts and labels.

        Keyword arguments override fields of :class:`Hyper`.
        """
        if len(texts) != len(labels):
            raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
        if not texts:
            raise ValueError("no training data")
        known = {f.name for f in fields(Hyper)}
        unknown = set(hyper) - known
        if unknown:
            raise TypeError(f"unknown hyperparameters: {sorted(unknown)}")
        h = Hyper(**hyper)
        label_names = sorted(set(labels))
        if len(label_names) < 2:
            raise ValueError("need at least two distinct labels")
        lab_id = {lab: i for i, lab in enumerate(label_names)}
        y = [lab_id[lab] for lab in labels]
        norms = [normalize_text(t) for t in texts]
        vec, raws = _Vectorizer.fit(norms, h)
        xs = [vec.transform_raw(r) for r in raws]
        if h.model == "logreg":
            weights, bias = _train_logreg(xs, y, len(label_names), len(vec.idf), h)
            return cls(label_names, vec, weights, bias, 1.0)
        if h.model == "cnb":
            weights, bias, temp = _train_cnb(xs, y, len(label_names), len(vec.idf), h)
            return cls(label_names, vec, weights, bias, temp)
        raise ValueError(f"unknown model {h.model!r}")

    # -- inference --------------------------------------------------------------

    def _scores(self, idx: list[int], val: list[float]) -> list[float]:
        get = _getter(idx)
        return [b + sum(map(mul, val, get(row))) for row, b in zip(self._weights, self._bias, strict=True)]

    def decision_scores(self, text: str) -> dict[str, float]:
        """Raw (pre-softmax, temperature-scaled) per-label scores."""
        idx, val = self._vec.transform(text)
        t = self._temperature
        return {lab: s * t for lab, s in zip(self.labels, self._scores(idx, val), strict=True)}

    def predict_proba(self, text: str) -> dict[str, float]:
        """Probability per label (sums to 1), in label order."""
        idx, val = self._vec.transform(text)
        t = self._temperature
        probs = _softmax([s * t for s in self._scores(idx, val)])
        return dict(zip(self.labels, probs, strict=True))

    def predict(self, text: str) -> tuple[str, float]:
        """Best label and its probability (ties broken by label order)."""
        proba = self.predict_proba(text)
        best = max(self.labels, key=lambda lab: proba[lab])
        return best, proba[best]

    def ranking(self, text: str) -> list[tuple[str, float]]:
        """All labels with probabilities, most probable first."""
        proba = self.predict_proba(text)
        return sorted(proba.items(), key=lambda kv: (-kv[1], kv[0]))

    def known_feature_ratio(self, text: str) -> float:
        """Fraction of the text's raw features that are in the vocabulary (0..1).

        Useful as a cheap "this looks nothing like the training data" signal.
        """
        words, chars = _raw_features(normalize_text(text), self.hyper)
        total = len(words) + len(chars)
        if not total:
            return 0.0
        vocab = self._vec.vocab
        hit = sum(1 for k in words if k in vocab) + sum(1 for k in chars if k in vocab)
        return hit / total

    # -- serialization ----------------------------------------------------------

    def to_json(self) -> str:
        """Serialize to a JSON string (restorable with :meth:`from_json`)."""
        vec = self._vec
        feats = [""] * len(vec.idf)
        for k, j in vec.vocab.items():
            feats[j] = k
        payload = {
            "format": FORMAT_VERSION,
            "kind": "textdesk.textclf.TextClassifier",
            "hyper": asdict(vec.hyper),
            "labels": self.labels,
            "features": feats,
            "idf": [round(x, 6) for x in vec.idf],
            "weights": [[round(x, 6) for x in row] for row in self._weights],
            "bias": [round(x, 6) for x in self._bias],
            "temperature": self._temperature,
        }
        return json.dumps(payload, separators=(",", ":"))

    @classmethod
    def from_json(cls, s: str) -> TextClassifier:
        """Restore a classifier serialized with :meth:`to_json`."""
        d = json.loads(s)
        if d.get("format") != FORMAT_VERSION:
            raise ValueError(f"unsupported model format {d.get('format')!r}")
        h = Hyper(**d["hyper"])
        feats: list[str] = d["features"]
        vec = _Vectorizer(
            hyper=h,
            vocab={k: j for j, k in enumerate(feats)},
            idf=[float(x) for x in d["idf"]],
            is_word=[k.startswith(("w:", "b:")) for k in feats],
        )
        weights = [[float(x) for x in row] for row in d["weights"]]
        return cls(list(d["labels"]), vec, weights, [float(x) for x in d["bias"]], float(d["temperature"]))


# ---------------------------------------------------------------------------
# Trainers
# ---------------------------------------------------------------------------


def _class_weights(y: Sequence[int], n_classes: int, mode: str) -> list[float]:
    counts = [0] * n_classes
    for c in y:
        counts[c] += 1
    n = len(y)
    if mode == "none":
        return [1.0] * n_classes
    if mode == "balanced":
        return [n / (n_classes * max(1, k)) for k in counts]
    if mode == "sqrt":
        return [math.sqrt(n / (n_classes * max(1, k))) for k in counts]
    raise ValueError(f"unknown class_weight {mode!r}")


def _train_logreg(
    xs: Sequence[tuple[list[int], list[float]]],
    y: Sequence[int],
    n_classes: int,
    n_features: int,
    h: Hyper,
) -> tuple[list[list[float]], list[float]]:
    """Multinomial logistic regression by SGD.

    The L2 penalty is applied lazily: true weights are ``scale * W``; each step
    multiplies ``scale`` by ``(1 - lr * l2)`` and updates are divided by it.
    """
    rng = random.Random(h.seed)
    cw = _class_weights(y, n_classes, h.class_weight)
    w: list[list[float]] = [[0.0] * n_features for _ in range(n_classes)]
    bias = [0.0] * n_classes
    # start the bias at the log prior so early epochs are not spent on it
    counts = [0] * n_classes
    for c in y:
        counts[c] += 1
    for c in range(n_classes):
        bias[c] = math.log(max(counts[c], 1) * cw[c] / len(y))
    scale = 1.0
    order = list(range(len(xs)))
    eps = h.update_eps
    getters = [_getter(idx) for idx, _ in xs]
    for epoch in range(h.epochs):
        rng.shuffle(order)
        lr = h.lr / (1.0 + h.lr_decay * epoch)
        shrink = 1.0 - lr * h.l2
        for i in order:
            idx, val = xs[i]
            yi = y[i]
            get = getters[i]
            scores = [b + scale * sum(map(mul, val, get(row))) for row, b in zip(w, bias, strict=True)]
            probs = _softmax(scores)
            if shrink != 1.0:
                scale *= shrink
                if scale < 1e-6:  # fold the scale back into the weights
                    for row in w:
                        for j in range(n_features):
                            row[j] *= scale
                    scale = 1.0
            sw = cw[yi]
            for c in range(n_classes):
                g = probs[c] - (1.0 if c == yi else 0.0)
                if -eps < g < eps:
                    continue
                step = lr * sw * g
                bias[c] -= step * 0.1
                row = w[c]
                s = step / scale
                for j, v in zip(idx, val, strict=True):
                    row[j] -= s * v
    if scale != 1.0:
        for row in w:
            for j in range(n_features):
                row[j] *= scale
    return w, bias


def _train_cnb(
    xs: Sequence[tuple[list[int], list[float]]],
    y: Sequence[int],
    n_classes: int,
    n_features: int,
    h: Hyper,
) -> tuple[list[list[float]], list[float], float]:
    """Complement naive Bayes with weight normalization; softmax temperature fitted on train."""
    per_class = [[0.0] * n_features for _ in range(n_classes)]
    total = [0.0] * n_features
    for (idx, val), c in zip(xs, y, strict=True):
        row = per_class[c]
        for j, v in zip(idx, val, strict=True):
            row[j] += v
            total[j] += v
    grand = sum(total)
    weights: list[list[float]] = []
    a = h.alpha
    for c in range(n_classes):
        row = per_class[c]
        comp = [t - r for t, r in zip(total, row, strict=True)]
        denom = (grand - sum(row)) + a * n_features
        logs = [math.log((x + a) / denom) for x in comp]
        norm = sum(abs(x) for x in logs) or 1.0
        # CNB predicts argmin of x . logs/norm; negate so that higher is better.
        weights.append([-x / norm for x in logs])
    bias = [0.0] * n_classes
    # centre scores so the temperature search is well conditioned
    raw = []
    for idx, val in xs:
        get = _getter(idx)
        raw.append([sum(map(mul, val, get(row))) for row in weights])
    temp = _fit_temperature(raw, y)
    return weights, bias, temp


def _fit_temperature(raw: Sequence[Sequence[float]], y: Sequence[int]) -> float:
    def nll(log_t: float) -> float:
        t = math.exp(log_t)
        total = 0.0
        for scores, yi in zip(raw, y, strict=True):
            m = max(scores)
            z = sum(math.exp((s - m) * t) for s in scores)
            total -= (scores[yi] - m) * t - math.log(z)
        return total / max(1, len(y))

    lo, hi = 0.0, 12.0  # log-temperature bracket: 1 .. ~160000
    gr = (math.sqrt(5) - 1) / 2
    c, d = hi - gr * (hi - lo), lo + gr * (hi - lo)
    fc, fd = nll(c), nll(d)
    for _ in range(40):
        if fc < fd:
            hi, d, fd = d, c, fc
            c = hi - gr * (hi - lo)
            fc = nll(c)
        else:
            lo, c, fc = c, d, fd
            d = lo + gr * (hi - lo)
            fd = nll(d)
    return math.exp((lo + hi) / 2)


def evaluate(
    clf: TextClassifier, items: Iterable[tuple[str, str]]
) -> tuple[float, dict[str, dict[str, int]]]:
    """Accuracy and confusion counts ``{gold: {pred: n}}`` over (text, gold) pairs."""
    conf: dict[str, dict[str, int]] = {}
    n = ok = 0
    for text, gold in items:
        pred, _ = clf.predict(text)
        conf.setdefault(gold, {})
        conf[gold][pred] = conf[gold].get(pred, 0) + 1
        n += 1
        ok += pred == gold
    return (ok / n if n else 0.0), conf
