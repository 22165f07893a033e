"""Layered prompt-injection screen for inbound SMS.

An SMS number is public: anyone can text it, and whatever they text is fed to an LLM
that can book and cancel appointments. Before any understanding step, each message
goes through `InjectionScreen.screen`, which runs three layers:

1. **normalize** (`guardrails.normalize`): undo obfuscation -- zero-width and bidi
   characters, fullwidth/Cyrillic/Greek look-alikes, leetspeak, s p a c e d letters,
   base64/hex/percent-encoded chunks -- and produce every variant worth screening.
2. **patterns** (`PATTERNS` below): weighted regexes for known attack shapes, grouped in
   families (override, roleplay, extraction, delimiter, tool_abuse, exfiltration,
   markdown, obfuscation, authority). Strong patterns block on their own; weak ones
   (words customers also use: "ignore my last text", "new instructions: I'm late")
   only add evidence.
3. **classifier**: a `textdesk.textclf.TextClassifier` trained at first use on the
   shipped, labelled ``guardrails/data/injection_train.yaml`` (a fraction of a second,
   pure Python). It catches paraphrases no regex anticipates.

The score is a noisy-OR of the evidence: the best weight per pattern family, the
classifier's attack probability, and a bonus when the evidence only appeared after
de-obfuscation (hiding an instruction is itself a sign of intent). ``triggered`` is
``score >= threshold``.

The screen is deliberately customer-friendly: "cancel all my appointments" is the
customer's right, "ignore my last text" is everyday SMS. Whether a *legitimate*
request is allowed (e.g. booking for another phone number) is the agent's policy
layer's job, not this screen's.
"""

from __future__ import annotations

import functools
import re
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from guardrails.normalize import Normalized, normalize
from textdesk.textclf import TextClassifier

__all__ = [
    "DATA_DIR",
    "DEFAULT_THRESHOLD",
    "PATTERNS",
    "InjectionScreen",
    "InjectionVerdict",
    "Pattern",
    "load_classifier",
    "match_form",
]

DEFAULT_THRESHOLD = 0.8
DATA_DIR = Path(__file__).parent / "data"
TRAIN_FILE = DATA_DIR / "injection_train.yaml"
# Training data by family of technique, written separately from every evaluation set.
FAMILIES_FILE = DATA_DIR / "injection_families.yaml"
# Ordinary customer texts: the intent classifier's training files (every one is benign). Read as
# data, so the screen learns what everyday SMS to a business looks like in bulk.
CUSTOMER_TEXTS = tuple((Path(__file__).resolve().parents[1] / "agent" / "nlu" / n)
                       for n in ("train.yaml", "train_kinds.yaml"))
ATTACK, BENIGN = "attack", "benign"

# Signals that mean someone tried to hide text from a reader or a keyword filter. "leet"
# alone is weak (people type "gr8"), so it only counts when it produced the evidence.
_OBFUSCATION_SIGNALS = (
    "zero_width",
    "bidi",
    "homoglyph",
    "fullwidth",
    "base64",
    "hex",
    "percent",
    "spaced",
    "leet",
)
_OBFUSCATION_BONUS = 0.5
# A classifier vote below this is ignored entirely: it keeps low-confidence noise from
# stacking onto a weak pattern hit.
_CLASSIFIER_FLOOR = 0.2
# Long texts are classified in overlapping windows of about one SMS segment (max over
# windows): one attack sentence inside ten segments of chit-chat would otherwise be
# diluted away by TF-IDF normalisation. Only the first _CLASSIFIER_MAX_CHARS are
# classified (a concatenated SMS is at most 1600 characters); regexes see everything.
_CLASSIFIER_WINDOW = 160
_CLASSIFIER_STEP = 120
_CLASSIFIER_MAX_CHARS = 2000
# An injection needs words. On one- or two-word messages ("N", "STOP", "ok thx") the
# classifier's vote is mostly bias and noise, so it is scaled by words/3; the regexes
# still catch short attacks such as "enable god mode".
_CLASSIFIER_FULL_WORDS = 3
# With no regex hit and no obfuscation the classifier is the only witness, and on held-out
# customer texts heavy in attack vocabulary ("your booking system keeps saying error") it
# is overconfident. Its lone vote is scaled so that it needs ~0.84 to block at 0.8 (chosen
# with the training data of both files in 5-fold cross-validation, never the dev sets).
_CLASSIFIER_ALONE_SCALE = 0.95
_WORD_RE = re.compile(r"[^\W\d_]+")
# Hyperparameters for the classifier, pinned (not left to TextClassifier's defaults) so
# that the validated behaviour does not drift when the shared defaults change. Chosen by
# 5-fold cross-validation of the whole screen on injection_train.yaml, never on the
# dev set: a lighter char block (0.7) gave the best recall at equal false blocks.
CLASSIFIER_HYPER: dict[str, Any] = {
    "model": "logreg",
    "char_min": 3,
    "char_max": 5,
    "word_ngrams": 2,
    "word_weight": 1.0,
    "char_weight": 0.7,
    "epochs": 2,
    "lr": 2.0,
    "lr_decay": 0.5,
    "l2": 1e-5,
    "update_eps": 0.02,
    "seed": 13,
    # Customer texts outnumber attacks about five to one; sqrt weighting keeps recall up
    # without the false blocks full balancing gave (5-fold CV on the training data: recall
    # 0.83, false blocks 1.0 % on hard benign items, none on the shipped suites' messages).
    "class_weight": "sqrt",
}

# --- pattern layer ----------------------------------------------------------------------
_S = r"[\s.,:;!*_\-]+"
# Up to three filler words, none of which may be "my"/"our": "ignore my previous
# instructions" is a customer talking about their own earlier texts.
_FILL = r"(?:(?!(?:my|our|mine)\b)[a-z']+" + _S + r"){0,3}"
_NOUN = (
    r"(?:instructions?|rules|prompts?|system\s*prompt|system\s*message|directives?|"
    r"guidelines|guidance|programming|constraints|restrictions|policies|policy|training|"
    r"commands|orders|context|limitations|guardrails|configuration)"
)
_PHONE = r"\+?\d[\d\s().\-]{6,}\d"
# "..., that's my work phone": the customer is talking about their own number.
_NOT_MINE = r"(?!.{0,15}?\b(?:is|was|that'?s|it'?s|thats|its)\s+(?:my|mine|me)\b)"


@dataclass(frozen=True, slots=True)
class Pattern:
    """One attack shape: a stable id, its family, a weight in (0, 1) and the regex.

    ``anchors`` are cheap substring pre-checks (in match form): the regex only runs when
    one of them occurs in the text. Python's ``re`` has no multi-pattern engine, so on a
    1600-character SMS this skips most of the ~80 regexes or most of the text. Every
    match of the regex must contain at least one anchor.
    """

    id: str
    family: str
    weight: float
    regex: re.Pattern[str]
    case_sensitive: bool = False
    anchors: tuple[str, ...] = ()

    def search(self, text: str) -> bool:
        """True if the pattern occurs in ``text`` (match form unless case-sensitive).

        On long texts the regex only runs in windows around anchor occurrences (using
        ``pos``/``endpos``, so ``^``, ``\\b`` and look-behinds still see the real text).
        Every pattern match is far shorter than a window.
        """
        if not self.anchors:
            return self.regex.search(text) is not None
        if len(text) <= _LONG_TEXT:
            if not any(anchor in text for anchor in self.anchors):
                return False
            return self.regex.search(text) is not None
        windows = _anchor_windows(text, self.anchors)
        return any(self.regex.search(text, start, end) for start, end in windows)


# Texts longer than this are regex-searched only around anchor occurrences.
_LONG_TEXT = 400
_BEFORE, _AFTER = 200, 300


def _anchor_windows(text: str, anchors: tuple[str, ...]) -> list[tuple[int, int]]:
    """Merged ``(start, end)`` windows around every occurrence of every anchor."""
    spans: list[tuple[int, int]] = []
    for anchor in anchors:
        at = text.find(anchor)
        while at != -1:
            spans.append((max(0, at - _BEFORE), min(len(text), at + _AFTER)))
            at = text.find(anchor, at + _AFTER - _BEFORE)
    spans.sort()
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _p(
    pid: str,
    family: str,
    weight: float,
    rx: str,
    *,
    case: bool = False,
    anchors: tuple[str, ...] = (),
) -> Pattern:
    flags = re.MULTILINE if case else re.IGNORECASE | re.MULTILINE
    # "{S}" is a word separator, "{S}?" an optional one.
    rx = rx.replace("{S}?", f"(?:{_S})?").replace("{S}", _S)
    return Pattern(pid, family, weight, re.compile(rx, flags), case, anchors)


def match_form(text: str) -> str:
    """Casefold, strip accents, unify apostrophes and squeeze spaces (keeps newlines).

    Patterns are written against this form so they need not spell out case, accents
    ("règles" -> "regles") or curly quotes.
    """
    text = unicodedata.normalize("NFKD", text.casefold())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("`", "'")
    return re.sub(r"[ \t\r\f\v]+", " ", text)


PATTERNS: tuple[Pattern, ...] = (
    # --- instruction override -------------------------------------------------------
    _p(
        "ignore_instructions",
        "override",
        0.95,
        r"\b(?:ignore|ignoring|disregard|forget|overlook|bypass|override|abandon|erase|"
        r"discard|set{S}aside|pay{S}no{S}attention{S}to|stop{S}following|stop{S}obeying|"
        r"don'?t{S}follow|do{S}not{S}follow|(?:drop|skip|delete|clear|reset)"
        r"(?={S}(?:all|any|your|the|previous|prior)))"
        + _S
        + _FILL
        + _NOUN
        + r"\b(?!{S}(?:i|we){S}(?:gave|sent|texted|left|wrote|mentioned))",
        anchors=(
            "ignor",
            "disregard",
            "forget",
            "overlook",
            "bypass",
            "override",
            "abandon",
            "erase",
            "discard",
            "aside",
            "attention",
            "follow",
            "obey",
            "drop",
            "skip",
            "delete",
            "clear",
            "reset",
        ),
    ),
    _p(
        "ignore_above",
        "override",
        0.85,
        r"\b(?:ignore|disregard|forget)\b{S}(?:all{S}|everything{S}|the{S})?"
        r"(?:above|preceding|before{S}this|prior{S}context|conversation{S}so{S}far)\b",
        anchors=("ignor", "disregard", "forget"),
    ),
    _p(
        "forget_told",
        "override",
        0.9,
        r"\b(?:forget|ignore|disregard)\b{S}(?:everything|all|anything|whatever)"
        r"{S}(?:you(?:'ve|{S}have|{S}were|{S}had)?{S}(?:been{S})?(?:told|given|taught|instructed)"
        r"|(?:they|the{S}\w+){S}told{S}you)",
        anchors=("forget", "ignor", "disregard"),
    ),
    _p(
        "instructions_void",
        "override",
        0.95,
        r"\b(?:previous|prior|above|earlier|original|old|initial|your|all|the{S}spa'?s|"
        r"the{S}salon'?s|the{S}clinic'?s){S}(?:instructions|rules|prompt|directives|"
        r"guidelines|programming)(?:{S}\w+)?{S}(?:are|is|have{S}been|were|has{S}been)"
        r"{S}(?:now{S})?(?:void|cancell?ed|revoked|deleted|outdated|invalid|null|obsolete|"
        r"overridden|replaced|suspended|no{S}longer)",
        anchors=("instruction", "rule", "prompt", "directive", "guideline", "programming"),
    ),
    _p(
        "everything_cancelled",
        "override",
        0.75,
        r"\b(?:everything|all){S}you{S}(?:were|have{S}been|'ve{S}been){S}told\b.{0,30}"
        r"\b(?:cancell?ed|void|wrong|invalid|obsolete)",
        anchors=("told",),
    ),
    _p(
        "disable_safety",
        "override",
        0.9,
        r"\b(?:override|bypass|disable|turn{S}off|deactivate|circumvent|remove|lift|"
        r"ignore|drop)\b{S}(?:all{S}|any{S}|your{S}|the{S}|of{S}your{S})*"
        r"(?:safety{S}|content{S}|security{S})?(?:restrictions|filters|filtering|"
        r"guardrails|safety|limitations|moderation|safety{S}(?:rules|checks|policy)|"
        r"content{S}polic(?:y|ies)|censorship)\b",
        anchors=(
            "restriction",
            "filter",
            "guardrail",
            "safety",
            "limitation",
            "moderation",
            "polic",
            "censor",
        ),
    ),
    _p(
        "from_now_on",
        "override",
        0.55,
        r"\b(?:from{S}now{S}on|henceforth|from{S}this{S}point{S}(?:on|forward))"
        r"{S}(?:,{S})?(?:you|respond|answer|reply|only|ignore|disregard|act|behave|obey)",
        anchors=("now", "henceforth", "point"),
    ),
    _p(
        "new_instructions",
        "override",
        0.3,
        r"\bnew{S}(?:system{S})?(?:instructions|directives?|rules|system{S}prompt|task)\b",
        anchors=("new",),
    ),
    _p(
        "obey_me",
        "override",
        0.7,
        r"\b(?:obey|follow){S}(?:only{S})?(?:me|my{S}(?:orders|commands|rules|instructions))\b"
        r"|\b(?:you{S}(?:now{S})?(?:obey|work{S}for|answer{S}to){S}(?:only{S})?me)\b"
        r"|\bawait{S}my{S}(?:orders|commands|instructions)",
        anchors=("obey", "follow", "work", "answer", "await"),
    ),
    # other languages (accents are stripped by match_form)
    _p(
        "ignore_instructions_de",
        "override",
        0.95,
        r"\b(?:ignorier\w*|vergiss|vergessen{S}sie|missachte\w*)\b.{0,40}?"
        r"\b(?:anweisungen|instruktionen|regeln|befehle|vorgaben|systemprompt|prompt)\b",
        anchors=("ignorier", "vergiss", "vergessen", "missacht"),
    ),
    _p(
        "ignore_instructions_es_pt_it",
        "override",
        0.95,
        r"\b(?:ignora|ignore|ignoren|olvida|olvide|olviden|omite|descarta|esqueca|esqueca|"
        r"dimentica)\b.{0,40}?\b(?:instrucciones|reglas|indicaciones|ordenes|"
        r"instrucoes|regras|istruzioni|regole)\b",
        anchors=("ignor", "olvid", "omite", "descarta", "esquec", "dimentica"),
    ),
    _p(
        "ignore_instructions_fr",
        "override",
        0.95,
        r"\b(?:ignorez|ignorer|ignore|oubliez|oublier|oublie|ne{S}tiens{S}pas{S}compte{S}de)"
        r"{S}(?:toutes{S}|tous{S}|les{S}|tes{S}|vos{S}|des{S}|ces{S})+(?:\w+{S})?"
        r"(?:instructions|regles|consignes|directives)\b",
        anchors=("ignor", "oubli", "tiens"),
    ),
    _p(
        "ignore_instructions_nl_pl",
        "override",
        0.95,
        r"\b(?:negeer|vergeet|zignoruj)\b.{0,40}?\b(?:instructies|regels|instrukcje|zasady)\b",
        anchors=("negeer", "vergeet", "zignoruj"),
    ),
    _p(
        "ignore_instructions_ru",
        "override",
        0.95,
        r"(?:игнорир|проигнорир|забуд).{0,40}?(?:инструкц|правил|промпт|указани)",
        anchors=("игнорир", "забуд"),
    ),
    _p(
        "ignore_instructions_cjk",
        "override",
        0.95,
        r"(?:忽略|无视|忘记|忘掉|無視|忘れ).{0,12}?(?:指令|指示|说明|规则|提示|命令|ルール|プロンプト)"
        r"|(?:指令|指示|命令|プロンプト|ルール).{0,12}?(?:忽略|无视|無視|忘れ)",
        anchors=("忽略", "无视", "忘记", "忘掉", "無視", "忘れ"),
    ),
    _p(
        "forget_everything_i18n",
        "override",
        0.9,
        r"\bvergiss{S}alles{S}(?:,{S})?was{S}(?:dir|ihnen|man)|\boublie[rz]?{S}tout{S}ce"
        r"{S}(?:qu'on|que{S}l'on|qu'|que){S}?(?:t'a|vous{S}a|on{S}t'a)|\bolvida{S}todo{S}lo{S}que"
        r"{S}te{S}(?:dijeron|han{S}dicho)",
        anchors=("vergiss", "oubli", "olvida"),
    ),
    _p(
        "instructions_you_got",
        "override",
        0.7,
        r"\b(?:instructions|rules|prompt|guidelines)\b{S}(?:that{S})?you(?:'ve|{S}have|{S}were)?"
        r"{S}(?:got|gotten|been{S}given|given|received)\b",
        anchors=("instruction", "rule", "prompt", "guideline"),
    ),
    # --- role hijack / jailbreak ----------------------------------------------------
    _p("dan", "roleplay", 0.6, r"\bDAN\b", case=True),
    _p(
        "do_anything_now",
        "roleplay",
        0.95,
        r"\bdo{S}anything{S}now\b|\b(?:you{S}are|you'?re|as|be|become|enable|stay{S}in"
        r"{S}character{S}as)\b{S}(?:now{S})?(?:dan|stan|dude|aim|evilbot|omega)\b"
        r"|\bdan{S}mode\b",
        anchors=("anything", "dan", "stan", "dude", "aim", "evilbot", "omega"),
    ),
    _p(
        "developer_mode",
        "roleplay",
        0.9,
        r"\b(?:developer|dev|debug|god|sudo|jailbreak|jailbroken|unrestricted|dan|admin|"
        r"root|opposite|unfiltered|uncensored){S}mode\b",
        anchors=("mode",),
    ),
    _p(
        "enter_mode",
        "roleplay",
        0.75,
        r"\b(?:enter|enable|activate|switch{S}(?:in)?to|turn{S}on|go{S}into|put{S}yourself"
        r"{S}in)\b{S}(?:the{S})?\w+{S}mode\b",
        anchors=("mode",),
    ),
    _p("jailbreak", "roleplay", 0.75, r"\bjailbr(?:eak|oken)\w*", anchors=("jailbr",)),
    _p(
        "you_are_now_strong",
        "roleplay",
        0.9,
        r"\byou(?:{S}are|'re|{S}r){S}now{S}(?:an?{S})?(?:in{S}\w+{S}mode|free|unrestricted|"
        r"unfiltered|uncensored|jailbroken|no{S}longer|operating{S}without|called|named|"
        r"(?:an?{S})?(?:ai|bot|assistant|chatbot|model|gpt){S}(?:with(?:out)?|that|who|called|named)|"
        r"[a-z]*(?:gpt|bot)\b|my{S}(?:accomplice|personal{S}ai))",
        anchors=("now",),
    ),
    _p(
        "you_are_now",
        "roleplay",
        0.55,
        r"\byou(?:{S}are|'re){S}now{S}(?:an?|the|in)\b"
        r"(?!{S}(?:favou?rite|go{S}to|best|only|official))",
        anchors=("now",),
    ),
    _p(
        "no_longer_assistant",
        "roleplay",
        0.85,
        r"\byou(?:{S}are|'re){S}(?:no{S}longer|not){S}(?:a|an|the|my)?{S}?(?:\w+{S}){0,2}"
        r"(?:assistant|bot|receptionist|chatbot)\b(?:{S}anymore)?"
        r"|\b(?:forget|stop){S}being{S}(?:a|an|the){S}(?:\w+{S})?(?:assistant|bot|receptionist)",
        anchors=("assistant", "bot", "receptionist"),
    ),
    _p(
        "act_as_role",
        "roleplay",
        0.85,
        r"\b(?:act|behave|respond|answer|reply){S}(?:as|like){S}(?:if{S}you{S}(?:have|had|were|are)"
        r"{S}(?:no|not|never|without)|if{S}your{S}(?:rules|instructions|prompt)|"
        r"(?:an?{S}|the{S}|my{S})?(?:\w+{S}){0,3}"
        r"(?:ai|assistant|bot|chatbot|model|gpt|hacker|admin|administrator|developer|terminal|"
        r"database|dba|root|linux|shell|grand(?:ma|mother|pa|father)|owner|manager|"
        r"personality|persona)\b)",
        anchors=("act", "behave", "respond", "answer", "reply"),
    ),
    _p(
        "pretend_to_be",
        "roleplay",
        0.75,
        r"\bpretend{S}(?:to{S}be|you{S}are|you'?re|that{S}you|you{S}(?:were|have|can|had)"
        r"{S}(?:no|never|an?|the|been))",
        anchors=("pretend",),
    ),
    _p(
        "pretend_role",
        "roleplay",
        0.9,
        r"\bpretend{S}(?:to{S}be|you{S}are|you'?re|that{S}you{S}are){S}(?:an?{S}|the{S}|my{S})?"
        r"(?:\w+{S}){0,2}(?:ai|assistant|bot|chatbot|model|gpt|hacker|admin|administrator|"
        r"developer|owner|manager|system|database)\b",
        anchors=("pretend",),
    ),
    _p(
        "roleplay_as",
        "roleplay",
        0.6,
        r"\b(?:let'?s{S})?role{S}?-?play(?:ing)?\b(?:{S}(?:as|that|where)|:)"
        r"|\b(?:simulate|imagine{S}you{S}are){S}(?:an?{S}|the{S})?(?:\w+{S}){0,2}"
        r"(?:ai|chatbot|assistant|model|bot)\b",
        anchors=("play", "simulate", "imagine"),
    ),
    _p(
        "stay_in_character",
        "roleplay",
        0.8,
        r"\b(?:stay|remain){S}in{S}character\b|\btwo{S}personalit",
        anchors=("character", "personalit"),
    ),
    _p(
        "no_rules",
        "roleplay",
        0.6,
        r"\b(?:no|without{S}any|without|zero|free{S}(?:from|of)|liberated{S}from)\b{S}"
        r"(?:\w+{S})?(?:rules|restrictions|filters|limitations|limits|guidelines|"
        r"content{S}polic(?:y|ies)|censorship|boundaries|programming|alignment)\b",
        anchors=(
            "rule",
            "restriction",
            "filter",
            "limit",
            "guideline",
            "polic",
            "censor",
            "boundar",
            "programming",
            "alignment",
        ),
    ),
    _p(
        "unrestricted_ai",
        "roleplay",
        0.85,
        r"\b(?:unrestricted|unfiltered|uncensored|unaligned|evil|rogue){S}(?:ai|mode|assistant|"
        r"bot|chatbot|version|model|gpt|llm)\b",
        anchors=("unrestricted", "unfiltered", "uncensored", "unaligned", "evil", "rogue"),
    ),
    # --- system-prompt extraction ---------------------------------------------------
    _p(
        "system_prompt",
        "extraction",
        0.8,
        r"\bsystem{S}?(?:prompt|message|instructions)\b",
        anchors=("system",),
    ),
    _p(
        "reveal_prompt",
        "extraction",
        0.95,
        r"\b(?:repeat|print|show|reveal|output|display|dump|leak|share|give|tell|send|paste|"
        r"copy|recite|read{S}back|write{S}out|spell{S}out|translate|summari[sz]e|encode|"
        r"list|quote|expose|disclose)\b(?:{S}(?:me|us|out))?{S}(?:all{S}|of{S})*"
        r"(?:the{S}|your{S}|its{S})?(?:text{S}of{S}(?:your|the){S})?"
        r"(?:(?:full|entire|whole|complete|exact|hidden|secret|initial|original|internal|"
        r"real|confidential|verbatim|first){S})*"
        r"(?:system|developer|dev|pre|hidden|secret|initial|original|internal){S}?-?"
        r"(?:prompt|instructions?|message|rules|configuration|config)\b",
        anchors=("prompt", "instruction", "message", "rule", "config"),
    ),
    _p(
        "reveal_instructions",
        "extraction",
        0.85,
        r"\b(?:repeat|print|reveal|output|dump|leak|recite|paste|copy|quote|spell{S}out|"
        r"translate|summari[sz]e|encode|read{S}back|disclose|expose|display)\b"
        r"(?:{S}(?:me|us|out))?{S}(?:the{S}text{S}of{S})?(?:all{S}(?:of{S})?)?"
        r"(?:your|the){S}(?:(?:full|entire|whole|exact|complete){S})?"
        r"(?:instructions|prompt|rules|configuration|programming|guidelines|pre-?prompt)\b"
        r"(?!{S}(?:for|on|about|regarding|re|to|again|i|you{S}(?:sent|gave){S}me|please))",
        anchors=("instruction", "prompt", "rule", "config", "programming", "guideline"),
    ),
    _p(
        "show_instructions",
        "extraction",
        0.6,
        r"\b(?:show|tell|give|send|share)\b{S}(?:me|us){S}(?:all{S})?(?:your|the)"
        r"{S}(?:hidden{S}|secret{S}|real{S})?(?:instructions|prompt|rules|configuration)\b"
        r"(?!{S}(?:for|on|about|regarding|to|again|you{S}(?:sent|gave)))",
        anchors=("instruction", "prompt", "rule", "config"),
    ),
    _p(
        "what_were_you_told",
        "extraction",
        0.8,
        r"\bwhat{S}(?:were|was|have|had|did)?{S}?you{S}(?:been{S})?(?:told|instructed|"
        r"programmed|given)\b(?!{S}(?:me\b|(?:about|regarding|re){S}(?:my|me|our|us)\b))|\bwhat{S}(?:did|have){S}(?:they|the{S}\w+|your{S}\w+)"
        r"{S}(?:tell|told|instruct|instructed){S}you\b",
        anchors=("told", "instruct", "programmed", "given", "tell"),
    ),
    _p(
        "what_are_your_instructions",
        "extraction",
        0.6,
        r"\bwhat(?:{S}are|'re|{S}were|s|'s|{S}is){S}(?:all{S})?(?:your|the){S}"
        r"(?:original{S}|initial{S}|real{S}|exact{S})?(?:instructions|rules|prompt)\b"
        r"(?!{S}(?:again\b{S}?)?(?:for|on|about|regarding|re|if|when|with|after|before|again)\b)",
        anchors=("instruction", "rule", "prompt"),
    ),
    _p(
        "reveal_prompt_i18n",
        "extraction",
        0.85,
        r"\b(?:zeig\w*|nenn\w*|verrat\w*|gib)\b{S}(?:mir{S})?(?:deine|die|ihre){S}"
        r"(?:anweisungen|regeln|instruktionen|systemprompt|prompt)\b"
        r"|\b(?:muestrame|dime|ensename|revela|mostra|mostre|mostrami|rivela|dimmi)\b{S}"
        r"(?:tus|tu|las|el|o|seu|sua|il|le|tue|il{S}tuo){S}(?:\w+{S})?(?:instrucciones|prompt|"
        r"reglas|instrucoes|istruzioni|regole)\b"
        r"|\b(?:affiche[rz]?|montre[rz]?(?:-moi)?|revele[rz]?|donne[rz]?(?:-moi)?){S}"
        r"(?:moi{S})?(?:tes|vos|les|ton|votre){S}(?:instructions|consignes|regles|prompt)\b",
        anchors=(
            "anweisung",
            "regeln",
            "instruktion",
            "prompt",
            "instruccion",
            "regla",
            "instruc",
            "istruzion",
            "regole",
            "consigne",
            "regle",
        ),
    ),
    _p(
        "share_prompt",
        "extraction",
        0.85,
        r"\b(?:share|give|send|show|tell|paste|post|forward)\b(?:{S}(?:me|us))?{S}"
        r"(?:your|the){S}(?:full{S}|whole{S}|entire{S}|exact{S})?prompt\b",
        anchors=("prompt",),
    ),
    _p(
        "what_system_said",
        "extraction",
        0.8,
        r"\bwhat{S}(?:the{S}system|they|the{S}developers?|the{S}(?:salon|business|spa|clinic)|"
        r"your{S}(?:creators?|developers?|owners?|operators?)){S}(?:said|told|wrote){S}"
        r"(?:to{S})?you\b|\bnot{S}allowed{S}to{S}(?:tell|say|share|reveal){S}(?:me|us)\b",
        anchors=("said", "told", "wrote", "allowed"),
    ),
    _p(
        "text_above",
        "extraction",
        0.85,
        r"\b(?:print|repeat|output|show|copy|read|write|paste)\b{S}(?:me{S})?(?:the{S})?"
        r"(?:text|words|everything|all|content|message|lines?)(?:{S}that{S}(?:is|are))?"
        r"{S}(?:above|before{S}this|prior{S}to{S}this)\b",
        anchors=("above", "before", "prior"),
    ),
    _p(
        "first_line_of_prompt",
        "extraction",
        0.9,
        r"\b(?:first|last|opening|initial|very{S}first){S}(?:line|sentence|word|paragraph|"
        r"words){S}of{S}(?:your|the){S}(?:instructions|prompt|rules|system)",
        anchors=("instruction", "prompt", "rule", "system"),
    ),
    _p(
        "how_configured",
        "extraction",
        0.6,
        r"\bhow{S}(?:were|are|was){S}you{S}(?:configured|programmed|set{S}up|instructed|"
        r"prompted)\b|\b(?:configuration|internal{S}state|hidden{S}configuration)\b",
        anchors=("configur", "programmed", "set", "instructed", "prompted", "internal"),
    ),
    _p(
        "list_tools",
        "extraction",
        0.7,
        r"\b(?:list|name|show|what{S}are|which|what)\b{S}(?:all{S})?(?:the{S}|your{S})?"
        r"(?:tools|functions)\b(?:{S}(?:you|do{S}you|can{S}you|available|and))|json{S}schema",
        anchors=("tool", "function", "schema"),
    ),
    # --- delimiter / chat-template injection ----------------------------------------
    _p(
        "chat_token",
        "delimiter",
        0.95,
        r"<\|[a-z_]+\|>|<\|?(?:im_start|im_end|endoftext)\|?>",
        anchors=("<|", "im_start", "im_end", "endoftext"),
    ),
    _p("inst_tag", "delimiter", 0.95, r"\[/?inst\]|<</?sys>>|</s>", anchors=("inst", "sys", "</s>")),
    _p(
        "role_tag",
        "delimiter",
        0.9,
        r"</?(?:system|system_prompt|sys|instructions?|admin|tool_call|assistant|developer)>",
        anchors=(
            "system>",
            "sys>",
            "instruction>",
            "instructions>",
            "admin>",
            "tool_call>",
            "assistant>",
            "developer>",
            "system_prompt>",
        ),
    ),
    _p(
        "markdown_system_header",
        "delimiter",
        0.9,
        r"#{2,}\s*(?:system|instruction|human|assistant|response|user|admin)\b"
        r"|'''\s*(?:system|admin)\b",
        anchors=("##", "'''"),
    ),
    _p(
        "role_prefix",
        "delimiter",
        0.75,
        r"(?:^|\n)\s*(?:system|assistant|developer|human|admin)\s*:",
        anchors=("system", "assistant", "developer", "human", "admin"),
    ),
    _p(
        "bracket_system",
        "delimiter",
        0.85,
        r"\[\[?\s*(?:system|admin|sys|developer)(?:\s+[a-z]+){0,2}\s*\]\]?"
        r"|\b(?:system|admin)\s*(?:message|override|note)\s*[:\]]|@system\b",
        anchors=("sys", "admin", "developer"),
    ),
    _p(
        "json_role",
        "delimiter",
        0.95,
        r"\"role\"\s*:\s*\"(?:system|assistant|developer|tool)\"",
        anchors=("role",),
    ),
    _p(
        "end_of_input",
        "delimiter",
        0.75,
        r"\b(?:end{S}of{S}(?:user{S}input|conversation|instructions|prompt)|"
        r"(?:begin|end){S}system{S}prompt|your{S}instructions{S}end{S}here)\b",
        anchors=("input", "conversation", "instruction", "prompt"),
    ),
    # --- tool abuse -----------------------------------------------------------------
    _p(
        "tool_name",
        "tool_abuse",
        0.9,
        r"\b(?:create|cancel|delete|update|list|get|send|reschedule|book|lookup|find|search|"
        r"modify|remove|refund|export)_(?:bookings?|appointments?|sms|messages?|customers?|"
        r"slots?|availability|reminders?|texts?|records?|clients?)\b",
        anchors=("_",),
    ),
    _p(
        "call_tool",
        "tool_abuse",
        0.75,
        r"\b(?:call|invoke|run|execute|trigger|use)\b{S}(?:the{S}|your{S}|a{S})?"
        r"(?:\w+{S})?(?:tool|function|api)s?\b",
        anchors=("tool", "function", "api"),
    ),
    _p(
        "mass_action",
        "tool_abuse",
        0.85,
        r"\b(?:cancel|delete|remove|clear|wipe|reschedule|move|mark|void|refund|text|message|"
        r"email|notify|send|sms|opt|reassign|book|fill)\b{S}(?:out{S})?(?:all|every|each|everyone|everybody)"
        r"(?:'?s)?\b(?!{S}(?:of{S})?(?:my|our|mine)\b)"
        r"(?:{S}(?:the|of{S}the|\w+'s|of))?(?:{S}\w+)?{S}"
        r"(?:bookings?|appointments?|reservations?|customers?|clients?|patients?|slots?|"
        r"open{S}slots?|schedule|calendar|numbers?|contacts?)\b"
        r"(?!{S}(?:(?:that{S})?(?:i|we|i'?ve|we'?ve){S}(?:have|had|booked|made|got)|"
        r"(?:that{S})?(?:i'?ve|we'?ve|i'?d|we'?d)\b|for{S}(?:me|us|my|myself|both)\b))",
        anchors=(
            "booking",
            "appointment",
            "reservation",
            "customer",
            "client",
            "patient",
            "slot",
            "schedule",
            "calendar",
            "number",
            "contact",
        ),
    ),
    _p(
        "mass_action_everyone",
        "tool_abuse",
        0.75,
        r"\b(?:cancel|reschedule|move|text|message|notify|email|reassign)\b{S}"
        r"(?:everyone|everybody)\b(?!{S}(?:in|from){S}my\b)",
        anchors=("everyone", "everybody"),
    ),
    _p(
        "mass_action_i18n",
        "tool_abuse",
        0.85,
        r"\b(?:annule[rz]?|supprime[rz]?)\b{S}(?:tous|toutes){S}(?:les|des){S}"
        r"(?:rendez-vous|rdv|reservations)\b|\b(?:cancela|cancelar|cancele|borra|elimina)\b{S}"
        r"(?:todas|todos){S}(?:las|los){S}(?:citas|reservas|turnos)\b|\b(?:storniere|"
        r"stornieren|losche|loschen|sage|absagen)\b{S}(?:alle|samtliche){S}(?:die{S})?"
        r"(?:termine|buchungen)\b|\balle{S}(?:termine|buchungen){S}(?:\w+{S}){0,3}"
        r"(?:stornieren|absagen|loschen)\b",
        anchors=("tous", "toutes", "todas", "todos", "alle", "samtliche"),
    ),
    _p(
        "tamper_business",
        "tool_abuse",
        0.6,
        r"\b(?:set|change|make|update)\b{S}(?:the{S})?(?:price|prices|cost)\b"
        r"|\b(?:apply|give|add)\b{S}(?:a{S})?100{S}?%{S}?(?:off|discount)"
        r"|\bissue{S}(?:a{S}|me{S}a{S})?(?:full{S})?refund\b",
        anchors=("price", "cost", "100", "refund"),
    ),
    _p(
        "wipe_schedule",
        "tool_abuse",
        0.8,
        r"\b(?:cancel|delete|clear|wipe)\b{S}(?:the{S})?(?:whole{S}|entire{S})?"
        r"(?:schedule|calendar|day'?s{S}bookings)\b",
        anchors=("schedule", "calendar", "bookings"),
    ),
    _p(
        "for_every_customer",
        "tool_abuse",
        0.7,
        r"\b(?:for|to)\b{S}(?:every|each|all)(?:{S}(?:the|of{S}the|your))?(?:{S}\w+)?{S}"
        r"(?:customers?|clients?|patients?|users?|contacts?|numbers?|people)\b",
        anchors=("customer", "client", "patient", "user", "contact", "number", "people"),
    ),
    _p(
        "cancel_for_number",
        "tool_abuse",
        0.7,
        r"\b(?:cancel|reschedule|move|delete|change)\b(?!{S}(?:my|our)\b).{0,40}?"
        r"\b(?:for|under|of|on)\b{S}(?:the{S})?(?:phone{S})?(?:number|phone|#|no\.?)?"
        r"\s*:?\s*" + _PHONE + _NOT_MINE,
        anchors=("0", "1", "2", "3", "4", "5", "6", "7", "8", "9"),
    ),
    _p(
        "booking_for_number",
        "tool_abuse",
        0.55,
        r"\b(?:book|cancel|reschedule|move|create|delete|reserve|schedule)\b"
        r"(?!{S}(?:my|our|me|us)\b).{0,40}?"
        r"\b(?:for|under|of|using|on)\b{S}(?:the{S})?(?:phone{S})?(?:number|phone|#|no\.?)?"
        r"\s*:?\s*" + _PHONE + _NOT_MINE,
        anchors=("0", "1", "2", "3", "4", "5", "6", "7", "8", "9"),
    ),
    _p(
        "for_phone_number",
        "tool_abuse",
        0.8,
        r"\b(?:for|under|with){S}phone{S}(?:number|#)\s*:?\s*" + _PHONE,
        anchors=("phone",),
    ),
    _p(
        "other_persons_booking",
        "tool_abuse",
        0.75,
        r"\b(?:cancel|reschedule|move|delete|change)\b.{0,40}?\b(?:whoever|someone{S}else|"
        r"the{S}(?:other|previous|next){S}(?:lady|guy|person|customer|client|patient)|"
        r"the{S}(?:lady|guy|person|customer|client|patient){S}(?:who|that|before|after)|"
        r"the{S}\d+{S}?(?:am|pm)?{S}customer|other{S}people)\b",
        anchors=(
            "whoever",
            "someone",
            "other",
            "previous",
            "next",
            "lady",
            "guy",
            "person",
            "customer",
            "client",
            "patient",
            "people",
        ),
    ),
    _p(
        "silent_booking",
        "tool_abuse",
        0.5,
        r"\b(?:don'?t|do{S}not|without)\b{S}(?:tell|telling|notify|notifying|text|texting|"
        r"confirm|sending{S}(?:a{S})?confirmation|send(?:ing)?{S}(?:a{S}|any{S})?confirmation)"
        r"(?:{S}(?:them|her|him|the{S}customer))?\b",
        anchors=("tell", "notify", "text", "confirm"),
    ),
    _p(
        "admin_access",
        "tool_abuse",
        0.75,
        r"\b(?:admin|administrator|root|superuser|owner){S}(?:access|privileges|permissions|"
        r"rights|user|account|login)\b",
        anchors=("admin", "root", "superuser", "owner"),
    ),
    # --- data exfiltration ----------------------------------------------------------
    _p(
        "customer_data",
        "exfiltration",
        0.85,
        r"(?<!my )\b(?:customers?|clients?|patients?|users?|other{S}people|everyone|everybody)"
        r"(?:'s|s'|')?{S}(?:phone{S})?(?:numbers?|phones|contact(?:{S}info|{S}details)?|emails?|"
        r"addresses|names|info|information|details|data|database|records|list|messages|"
        r"chat{S}history|history|conversations)\b",
        anchors=("customer", "client", "patient", "user", "people", "everyone", "everybody"),
    ),
    _p(
        "list_customers",
        "exfiltration",
        0.85,
        r"(?<!a )(?<!the )\b(?:list|export|dump|give{S}me|send{S}me|show{S}me|print|share|"
        r"tell{S}me)\b{S}"
        r"(?:all{S}|every{S}|the{S}|your{S}|of{S}|names{S}of{S})*(?:\w+{S})?"
        r"(?:customers|clients|patients|contacts|users)\b",
        anchors=("customer", "client", "patient", "contact", "user"),
    ),
    _p(
        "other_customer",
        "exfiltration",
        0.8,
        r"\b(?:other|previous|last|next)(?:{S}\w+)?{S}(?:customers?|clients?|patients?|"
        r"users?)(?:'s|s'|')?{S}(?:phone|numbers?|names?|messages?|texts?|details|info|"
        r"appointments?|bookings?|chats?)\b|\b(?:phone{S})?(?:number|name|address|phone|"
        r"contact{S}info|contact{S}details|details){S}of{S}(?:the{S}(?:person|customer|client|patient|lady|guy)|whoever|someone|"
        r"every|the{S}other|other|everyone)\b",
        anchors=(
            "customer",
            "client",
            "patient",
            "user",
            "person",
            "whoever",
            "someone",
            "every",
            "other",
            "lady",
            "guy",
        ),
    ),
    _p(
        "customers_their_data",
        "exfiltration",
        0.8,
        r"\b(?:customers|clients|patients)\b.{0,40}?\b(?:their|the)\b{S}(?:emails?|phone{S}?"
        r"numbers?|numbers|addresses|contact{S}(?:info|details))"
        r"|\b(?:phone{S}?number|number|address|email)\b.{0,30}?\b(?:she|he|they)(?:'s|{S}is|"
        r"{S}are){S}(?:a{S})?(?:client|customer|patient)",
        anchors=("customer", "client", "patient"),
    ),
    _p(
        "card_numbers",
        "exfiltration",
        0.7,
        r"\bcredit{S}?card{S}numbers\b|\bcards{S}(?:on{S}file|you{S}(?:have|store))",
        anchors=("card",),
    ),
    _p(
        "staff_pii",
        "exfiltration",
        0.7,
        r"\b(?:home{S}address|personal{S}(?:cell|phone|number|email|address))\b",
        anchors=("home", "personal"),
    ),
    _p(
        "their_number",
        "exfiltration",
        0.55,
        r"\b(?:give|send|tell|text|get)\b{S}me{S}(?:her|his|their)\b{S}(?:phone{S}|cell{S})?"
        r"(?:number|address|info|details|name)|\bi{S}need{S}(?:her|his|their){S}(?:phone{S}|cell{S})?"
        r"(?:number|address)",
        anchors=("number", "address", "info", "details", "name"),
    ),
    # Asking about another person's contact details or booking (tools never reveal them; the
    # screen still treats the attempt as an attack so it is logged and counted).
    _p(
        "number_on_file",
        "exfiltration",
        0.85,
        r"\b(?:email|e-mail|phone|number|address|name)(?:{S}address)?{S}(?:on{S}file|you{S}have){S}for\b"
        r"|\bwhat{S}(?:phone{S})?(?:number|email|phone)\b.{0,30}\b(?:did|does|do)\b{S}(?:he|she|they)\b{S}use\b",
        anchors=("file", "have", "use"),
    ),
    _p(
        "her_number_after",
        "exfiltration",
        0.85,
        r"\bwho\b.{0,40}\bbooked\b.{0,60}\b(?:her|his|their)\b{S}(?:phone{S}|cell{S})?(?:number|email)\b",
        anchors=("booked",),
    ),
    # Acting for a number other than the sender's: tools are bound to the sender, so a request
    # that names another phone number to book or update is an attempt to act for someone else.
    _p(
        "act_for_number",
        "tool_abuse",
        0.85,
        # Not "my booking under 646-555-0180" (customers do have two phones): a number that is
        # someone else's by the customer's own words, or an "update contact <number>" command.
        r"\b(?:book|schedule|cancel|reschedule|move|update|change)\b.{0,50}\bfor{S}"
        r"(?:my{S}(?:neighbou?r|friend|co-?worker|colleague|boss|ex|roommate|landlord)'?s?|someone'?s?|somebody'?s?|"
        r"another{S}(?:person|customer)'?s?|this|that|the{S}(?:other|following))"
        r"{S}(?:phone{S})?(?:number|phone|cell){S}?\+?\d[\d ().-]{8,}\d"
        r"|\bupdate{S}contact{S}\+?\d",
        anchors=("book", "schedule", "cancel", "reschedule", "move", "update", "change"),
    ),
    _p(
        "hoard_slots",
        "tool_abuse",
        0.85,
        r"\b(?:every|all){S}(?:the{S})?(?:open|free|available)?{S}?\w*{S}?(?:slots?|appointments?|times)\b"
        r".{0,60}\b(?:different|other|fake|multiple|many){S}(?:numbers|names|phones|people)\b",
        anchors=("slot", "appointment", "times"),
    ),
    _p(
        "hidden_setup",
        "extraction",
        0.85,
        r"\b(?:copy|paste|show|print|repeat|reveal|give|send|output)\b.{0,30}\b(?:hidden|secret|internal|"
        r"initial|original){S}(?:setup{S})?(?:text|instructions|prompt|message|rules|setup)\b",
        anchors=("hidden", "secret", "internal", "initial", "original"),
    ),
    _p(
        "who_is_booked",
        "exfiltration",
        0.45,
        r"\bwho(?:{S}else)?{S}(?:is|has|'s|s){S}(?:booked|an{S}appointment|the{S}\d+)",
        anchors=("booked", "appointment", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9"),
    ),
    _p(
        "secrets",
        "exfiltration",
        0.8,
        r"\b(?:api{S}?keys?|auth{S}?tokens?|access{S}tokens?|secret{S}keys?|credentials|"
        r"env(?:ironment)?{S}variables|\.env\b|(?:admin|database|db|root|server|account|sms|"
        r"openai|staff){S}(?:password|key|token|login|sid))",
        anchors=("api", "token", "secret", "credential", "env", "password", "key", "login", "sid"),
    ),
    _p(
        "send_sms_to_number",
        "exfiltration",
        0.7,
        r"\b(?:send|forward)\b{S}(?:a{S}|an{S}|this{S}|my{S}|the{S})?(?:text|sms|message|msg)s?"
        r"{S}to{S}" + _PHONE + r"|\b(?:text|sms|message)\b{S}" + _PHONE + r"{S}(?:and|saying|with|that)\b",
        anchors=("0", "1", "2", "3", "4", "5", "6", "7", "8", "9"),
    ),
    _p(
        "forward_to_all",
        "exfiltration",
        0.8,
        r"\b(?:forward|send)\b{S}(?:this|my|the){S}(?:message|text)s?{S}to{S}"
        r"(?:all|every|everyone)",
        anchors=("forward", "send"),
    ),
    _p(
        "sql",
        "exfiltration",
        0.9,
        r"\bselect\s+(?:\*|[a-z_,\s]+)\s+from\b|\bdrop\s+table\b|\bunion\s+select\b|;\s*--",
        anchors=("select", "drop", "union", "--"),
    ),
    _p(
        "conversation_history",
        "exfiltration",
        0.7,
        r"\b(?:chat|conversation)\s+(?:history|log|logs)\b|\bwhat\s+did\s+the\s+"
        r"(?:previous|last|other)\s+(?:customer|client|person|user)|\bmessages\s+"
        r"(?:from|of)\s+(?:the\s+)?(?:other|last|previous)\s+(?:customers?|clients?|users?)",
        anchors=("history", "log", "what", "messages"),
    ),
    # --- markdown / link / html injection -------------------------------------------
    _p("markdown_image", "markdown", 0.9, r"!\[[^\]\n]*\]\(\s*\S+", anchors=("![",)),
    _p(
        "markdown_link",
        "markdown",
        0.75,
        r"\[[^\]\n]+\]\(\s*(?:https?:|javascript:|data:|//)",
        anchors=("](",),
    ),
    _p(
        "html_script",
        "markdown",
        0.9,
        r"javascript:|data:text/html|<\s*(?:script|iframe|img|svg|object|embed)\b|"
        r"\bon(?:error|load|click|mouseover)\s*=|<a\s+href",
        anchors=(
            "javascript",
            "data:",
            "script",
            "iframe",
            "img",
            "svg",
            "object",
            "embed",
            "onerror",
            "onload",
            "onclick",
            "onmouseover",
            "<a",
        ),
    ),
    _p(
        "inject_into_replies",
        "markdown",
        0.6,
        r"\b(?:add|append|include|put|insert|end)\b[^.?!\n]{0,60}\b(?:every|each|all|your|"
        r"the{S}next)(?:{S}\w+)?{S}(?:reply|replies|answer|answers|response|responses|"
        r"messages?)\b",
        anchors=("repl", "answer", "response", "message"),
    ),
    # --- obfuscation requests and authority claims ----------------------------------
    _p(
        "decode_and_follow",
        "obfuscation",
        0.75,
        r"\b(?:decode|decrypt|convert|read|reverse)\b.{0,40}?\b(?:follow|obey|execute|"
        r"comply|do{S}it|run{S}it|as{S}your{S}new)\b|\b(?:base64|rot13|hex{S}string|backwards)"
        r"\b.{0,30}?\b(?:follow|obey|execute|comply|do{S}it)\b",
        anchors=("follow", "obey", "execute", "comply", "do it", "run it", "as your new"),
    ),
    _p(
        "rot13",
        "obfuscation",
        0.6,
        r"\brot-?13\b|\bpig{S}latin\b|\bigpay{S}atinlay\b",
        anchors=("rot", "pig", "igpay"),
    ),
    _p(
        "authority_claim",
        "authority",
        0.5,
        r"\b(?:i{S}am|i'?m|this{S}is)\b{S}(?:the|your|from{S}the|from{S}your){S}"
        r"(?:developer|admin|administrator|creator|programmer|operator|it{S}team|system|"
        r"dev{S}team)\b|\b(?:message|note|instructions?){S}(?:from|to){S}(?:the|your){S}"
        r"(?:developer|admin|it{S}team|language{S}model|ai)\b",
        anchors=("developer", "admin", "creator", "programmer", "operator", "team", "system", " ai"),
    ),
    _p(
        "address_the_model",
        "authority",
        0.6,
        r"\bif{S}you{S}are{S}an?{S}(?:ai|llm|language{S}model|bot)\b|\b(?:note{S}to|"
        r"attention|to{S}the)\b{S}(?:ai|llm|language{S}model|model|assistant)\b",
        anchors=(" ai", "llm", "model", "assistant"),
    ),
)


# --- verdict ----------------------------------------------------------------------------


class InjectionVerdict(BaseModel):
    """Outcome of screening one message. ``reason`` is a stable dotted code:

    * ``clean`` -- not triggered;
    * ``pattern.<id>`` -- a regex family carried the score (e.g. ``pattern.ignore_instructions``);
    * ``classifier`` -- the classifier carried it;
    * ``obfuscation.<signal>+pattern`` / ``obfuscation.<signal>+classifier`` -- the
      evidence only appeared after undoing obfuscation (e.g. ``obfuscation.base64+pattern``).
    """

    model_config = ConfigDict(frozen=True)

    name: Literal["injection"] = "injection"
    triggered: bool
    score: float = Field(ge=0.0, le=1.0)
    reason: str
    details: dict[str, Any] = Field(default_factory=dict)


# --- classifier -------------------------------------------------------------------------

_clf_lock = threading.Lock()
_clf_cache: dict[Path, TextClassifier] = {}


def _item_text(raw: object) -> str:
    """Training items are plain strings or ``{family|hard, text}`` mappings."""
    return str(raw["text"]) if isinstance(raw, dict) else str(raw)


def load_training_data(path: Path = TRAIN_FILE) -> tuple[list[str], list[str]]:
    """Read ``attack:``/``benign:`` lists (of ``path`` and, for the shipped data, the
    per-family file) and expand each text into its variants.

    Training on the normalized variants (not only the raw text) means the classifier
    sees the same kind of strings at training and screening time, including decoded
    base64 and de-leeted copies.
    """
    shipped = path == TRAIN_FILE
    paths = [path] + ([FAMILIES_FILE] if shipped and FAMILIES_FILE.exists() else [])
    texts: list[str] = []
    labels: list[str] = []
    for p in paths:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
        for label in (ATTACK, BENIGN):
            for raw in data[label]:
                for variant in normalize(_item_text(raw)).variants:
                    texts.append(variant)
                    labels.append(label)
    for p in CUSTOMER_TEXTS if shipped else ():
        if p.exists():
            for examples in (yaml.safe_load(p.read_text(encoding="utf-8")) or {}).values():
                texts.extend(str(e) for e in examples)
                labels.extend(BENIGN for _ in examples)
    return texts, labels


@functools.cache
def _default_classifier() -> TextClassifier:
    """Trained once per process and shared by every screen (evals build many pipelines)."""
    return load_classifier()


def load_classifier(path: Path = TRAIN_FILE) -> TextClassifier:
    """Train (once per process and data file) and return the injection classifier."""
    with _clf_lock:
        clf = _clf_cache.get(path)
        if clf is None:
            texts, labels = load_training_data(path)
            clf = TextClassifier.train(texts, labels, **CLASSIFIER_HYPER)
            _clf_cache[path] = clf
        return clf


# --- screen -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Hit:
    pattern: Pattern
    variant_index: int
    obfuscated: bool


class InjectionScreen:
    """Score an inbound message for prompt injection; see the module docstring.

    ``threshold`` is the score at or above which a message is blocked. At the default
    0.8 every strong pattern (weight >= 0.8) blocks on its own, a weak pattern needs the
    classifier's support, and the classifier alone needs ~0.89 confidence.
    ``classifier`` lets tests or callers inject a pre-trained model; by default one is
    trained from the shipped data at first use (~0.3 s; touch ``.classifier`` at start-up
    to pay that before the first message).
    """

    def __init__(
        self,
        threshold: float = DEFAULT_THRESHOLD,
        *,
        classifier: TextClassifier | None = None,
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be within [0, 1], got {threshold}")
        self.threshold = threshold
        self._classifier = classifier

    @property
    def classifier(self) -> TextClassifier:
        if self._classifier is None:
            self._classifier = _default_classifier()
        return self._classifier

    def screen(self, text: str) -> InjectionVerdict:
        """Screen ``text`` and return a verdict (never raises on odd input)."""
        norm = normalize(text or "")
        hits = self._match_patterns(text or "", norm)
        clf_prob, clf_variant, clean_prob = self._classify(norm)

        family_best: dict[str, _Hit] = {}
        for hit in hits:
            best = family_best.get(hit.pattern.family)
            if best is None or hit.pattern.weight > best.pattern.weight:
                family_best[hit.pattern.family] = hit

        keep = 1.0
        for hit in family_best.values():
            keep *= 1.0 - hit.pattern.weight
        pattern_score = 1.0 - keep
        clf_part = clf_prob if clf_prob >= _CLASSIFIER_FLOOR else 0.0

        obf_signals = [s for s in _OBFUSCATION_SIGNALS if s in norm.signals]
        pattern_needs_deobf = bool(hits) and all(h.obfuscated for h in hits)
        clf_needs_deobf = clf_variant > 0 and clf_prob >= 0.5 and clean_prob < 0.5
        hidden_signals = [s for s in obf_signals if s != "leet"]
        evidence = pattern_score > 0.0 or clf_part >= 0.5
        bonus = 0.0
        if evidence and (pattern_needs_deobf or clf_needs_deobf or hidden_signals):
            bonus = _OBFUSCATION_BONUS

        if not hits and not bonus:
            clf_part *= _CLASSIFIER_ALONE_SCALE
        score = 1.0 - (1.0 - pattern_score) * (1.0 - clf_part) * (1.0 - bonus)
        score = round(min(max(score, 0.0), 1.0), 4)
        triggered = score >= self.threshold

        reason = "clean"
        if triggered:
            # Name the regex when it is strong on its own or beats the classifier: a
            # pattern id says far more in a log line than "classifier".
            strong = pattern_score >= min(clf_part, self.threshold)
            carrier = "pattern" if hits and strong else "classifier"
            needs_deobf = pattern_needs_deobf if carrier == "pattern" else clf_needs_deobf
            if bonus and obf_signals and (needs_deobf or hidden_signals):
                reason = f"obfuscation.{obf_signals[0]}+{carrier}"
            elif carrier == "pattern":
                top = max(family_best.values(), key=lambda h: h.pattern.weight)
                reason = f"pattern.{top.pattern.id}"
            else:
                reason = "classifier"

        details: dict[str, Any] = {
            "patterns": sorted({h.pattern.id for h in hits}),
            "families": sorted(family_best),
            "pattern_score": round(pattern_score, 4),
            "classifier_prob": round(clf_prob, 4),
            "signals": list(norm.signals),
            "obfuscation_bonus": bonus,
            "variants": len(norm.variants),
            "threshold": self.threshold,
        }
        return InjectionVerdict(triggered=triggered, score=score, reason=reason, details=details)

    # -- layers ---------------------------------------------------------------------

    @staticmethod
    def _match_patterns(raw: str, norm: Normalized) -> list[_Hit]:
        """Run every pattern over every variant; a hit is *obfuscated* when the same
        pattern does not match the raw, un-normalized text."""
        raw_forms: dict[bool, str] = {}

        def raw_form(case_sensitive: bool) -> str:
            if case_sensitive not in raw_forms:
                cased = unicodedata.normalize("NFC", raw)
                raw_forms[case_sensitive] = cased if case_sensitive else match_form(cased)
            return raw_forms[case_sensitive]

        hits: list[_Hit] = []
        seen: set[str] = set()
        for index, variant in enumerate(norm.variants):
            folded = match_form(variant)
            for pattern in PATTERNS:
                if pattern.id in seen:
                    continue
                subject = variant if pattern.case_sensitive else folded
                if pattern.search(subject):
                    seen.add(pattern.id)
                    obfuscated = not pattern.search(raw_form(pattern.case_sensitive))
                    hits.append(_Hit(pattern, index, obfuscated))
        return hits

    def _prob(self, text: str, cache: dict[str, float]) -> float:
        if not text.strip():
            return 0.0
        text = text[:_CLASSIFIER_MAX_CHARS]
        words = len(_WORD_RE.findall(text))
        damping = min(1.0, words / _CLASSIFIER_FULL_WORDS)
        if len(text) <= _CLASSIFIER_WINDOW + _CLASSIFIER_STEP // 2:
            windows = [text]
        else:
            last = max(len(text) - _CLASSIFIER_WINDOW, 0)
            starts = [*range(0, last, _CLASSIFIER_STEP), last]
            windows = [text[i : i + _CLASSIFIER_WINDOW] for i in starts]
        prob = 0.0
        for window in windows:
            # Variants share most windows (de-leeting maps characters one to one), so
            # the per-call cache saves classifying the same window twice.
            cached = cache.get(window)
            if cached is None:
                cached = cache[window] = self.classifier.predict_proba(window).get(ATTACK, 0.0)
            prob = max(prob, cached)
        return prob * damping

    def _classify(self, norm: Normalized) -> tuple[float, int, float]:
        """Highest attack probability over the variants, which variant gave it, and the
        probability of the clean text itself (variant 0)."""
        best, best_index, clean_prob = 0.0, 0, 0.0
        cache: dict[str, float] = {}
        for index, variant in enumerate(norm.variants):
            prob = self._prob(variant, cache)
            if index == 0:
                clean_prob = prob
            if prob > best:
                best, best_index = prob, index
        return best, best_index, clean_prob
