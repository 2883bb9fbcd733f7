"""One tokenizer for every lexical backend, in the text's own language: lowercase word tokens, stopwords and a
Snowball stemmer where one exists (PyStemmer), and for Chinese, Japanese and Korean overlapping character bigrams,
as Lucene's CJK analyzer (and so Pyserini's ``zh``/``ja``/``ko`` analyzers) index them.

``language="en"`` is the English analysis alone (``stemmer``/``stopwords`` are its settings; a run of CJK text is one
token, as before languages were told apart). ``language="auto"`` detects each text's language (:func:`detect`: the
script for CJK, else the language whose stopwords it clearly uses most, else py3langid among the languages with an
analysis; a corpus's majority language as the prior) and analyses it so;
``language=<code>`` analyses every text as that language.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from typing import Iterable, Mapping, Sequence

_TOKEN = re.compile(r"(?u)\b\w\w+\b")
_WORD = re.compile(r"(?u)(?<!['\u2019])\b\w+\b")  # not the piece after an apostrophe (English 's, French l')
#: Han, Hiragana, Katakana (and half-width), Hangul: the scripts written without spaces between words
_CJK = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\u1100-\u11ff"
                  r"\u3130-\u318f\uff66-\uff9f]+")
_KANA = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f]")
_HANGUL = re.compile(r"[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]")

#: language code -> (Snowball stemmer, bm25s stopword list): the analysis of each language that has one
ANALYSES: dict[str, tuple[str | None, str | None]] = {
    "en": ("english", "STOPWORDS_EN"), "de": ("german", "STOPWORDS_GERMAN"), "fr": ("french", "STOPWORDS_FRENCH"),
    "es": ("spanish", "STOPWORDS_SPANISH"), "it": ("italian", "STOPWORDS_ITALIAN"),
    "pt": ("portuguese", "STOPWORDS_PORTUGUESE"), "nl": ("dutch", "STOPWORDS_DUTCH"),
    "da": ("danish", "STOPWORDS_DANISH"), "no": ("norwegian", "STOPWORDS_NORWEGIAN"),
    "nb": ("norwegian", "STOPWORDS_NORWEGIAN"), "sv": ("swedish", "STOPWORDS_SWEDISH"),
    "ru": ("russian", "STOPWORDS_RUSSIAN"), "tr": ("turkish", "STOPWORDS_TURKISH"), "fi": ("finnish", None),
    "hu": ("hungarian", None), "ro": ("romanian", None), "el": ("greek", None), "ar": ("arabic", None),
    "ca": ("catalan", None), "cs": ("czech", None), "pl": ("polish", None), "id": ("indonesian", None),
    "lt": ("lithuanian", None), "et": ("estonian", None), "eu": ("basque", None), "ga": ("irish", None),
    "hi": ("hindi", None), "ta": ("tamil", None), "ne": ("nepali", None), "fa": ("persian", None),
    "sr": ("serbian", None), "hy": ("armenian", None),
    "zh": (None, None), "ja": (None, None), "ko": (None, None),  # CJK: bigrams, no stopwords (as Lucene's CJKAnalyzer)
}
CJK_LANGUAGES = ("zh", "ja", "ko")
LANGUAGE_CHOICES = ("auto", *ANALYSES)


@lru_cache(maxsize=None)
def _stopword_set(name: str | None) -> frozenset[str]:
    if not name or name == "none":
        return frozenset()
    if name in ("en", "english"):
        from bm25s.stopwords import STOPWORDS_EN

        return frozenset(STOPWORDS_EN)
    raise ValueError(f"retriever.stopwords must be one of en|english|none, got {name!r}")


@lru_cache(maxsize=None)
def _language_stopwords(language: str) -> frozenset[str]:
    import bm25s.stopwords as lists

    name = ANALYSES.get(language, (None, None))[1]
    return frozenset(getattr(lists, name, ())) if name else frozenset()


@lru_cache(maxsize=1)
def _langid_model():
    """py3langid's classifier over all its languages, loaded once per process (~0.5 s)."""
    import py3langid.langid as langid

    cls = langid.LanguageIdentifier
    if hasattr(cls, "from_model_file"):  # py3langid >= 0.4
        return cls.from_model_file(langid.MODEL_FILE, norm_probs=False)
    return cls.from_pickled_model(langid.MODEL_FILE, norm_probs=False)  # 0.2/0.3: the model ships pickled


@lru_cache(maxsize=None)
def _identifier(candidates: frozenset[str]):
    """py3langid's classifier restricted to ``candidates``: a shallow copy of the one loaded model (restricting
    rebinds the copy's arrays from the model's own full ones, so copies do not disturb each other)."""
    import copy

    ident = copy.copy(_langid_model())
    known = set(ident.nb_classes)
    ident.set_languages(sorted(candidates & known) or None)
    return ident


#: the languages :func:`detect` chooses among when it is not told (those with an analysis, CJK by script)
DETECTABLE = frozenset(k for k in ANALYSES if k not in CJK_LANGUAGES)


def detect(text: str, candidates: Iterable[str] | None = None, prior: str | None = None, *,
           evidence: tuple[int, float] = (4, 3.0)) -> str:
    """The language of ``text`` (ISO 639-1): Japanese, Korean or Chinese by script (kana, Hangul, Han) when
    CJK characters are at least a fifth of its letters; else the language whose stopwords it uses most when that
    is clear, else py3langid's choice, among ``candidates`` (default: every language with an analysis).
    ``prior`` (a corpus's majority language): kept unless another language's stopwords clearly outnumber its own
    (``evidence``: at least 4 of them, and 3 times as many, for a document; a query asks less), or the text holds
    none of its stopwords (then py3langid decides) — an English paragraph quoting a German title or listing
    French names stays English."""
    sample = text[:2000]
    letters = sum(ch.isalpha() for ch in sample)
    cjk = sum(len(m) for m in _CJK.findall(sample))
    allowed = frozenset(candidates) if candidates is not None else None
    if letters and cjk >= 0.2 * letters and (allowed is None or allowed & set(CJK_LANGUAGES)):
        if _KANA.search(sample) and (allowed is None or "ja" in allowed):
            return "ja"
        if len(_HANGUL.findall(sample)) * 2 >= cjk and (allowed is None or "ko" in allowed):
            return "ko"
        if allowed is None or "zh" in allowed:
            return "zh"
    latin = (allowed - set(CJK_LANGUAGES)) if allowed is not None else DETECTABLE
    if not latin:
        return next(iter(sorted(allowed)))  # only CJK languages to choose from
    if len(latin) == 1 or not letters:
        return "en" if "en" in latin or not letters and allowed is None else sorted(latin)[0]
    words = _WORD.findall(_CJK.sub(" ", sample.lower()))  # one-letter words too: "a", "i", "y", "à" are stopwords
    if prior in latin:
        own = sum(w in _language_stopwords(prior) for w in words)
        other = max(((sum(w in _language_stopwords(lang) for w in words), lang) for lang in latin if lang != prior),
                    default=(0, prior))
        least, times = evidence
        if other[0] >= least and other[0] >= times * own:
            return other[1]
        if own or not letters:
            return prior
        # not one of the prior's stopwords: py3langid decides (a short question in another language)
        return str(_identifier(frozenset(latin)).classify(sample)[0])
    by_stopwords = _by_stopwords(words, latin)
    return by_stopwords or str(_identifier(frozenset(latin)).classify(sample)[0])


def _by_stopwords(words: list[str], candidates: Iterable[str]) -> str | None:
    """The language whose stopwords ``words`` use most, when it is clearly ahead (at least 2 of them, and half as
    many again as the next language's): the function words of running text outvote a quoted foreign name or
    phrase, which a character n-gram model (py3langid) weighs heavily in a short text."""
    hits = sorted(((sum(w in _language_stopwords(lang) for w in words), lang) for lang in candidates
                   if _language_stopwords(lang)), reverse=True)
    if not hits or hits[0][0] < 2:
        return None
    return hits[0][1] if len(hits) == 1 or hits[0][0] >= 1.5 * hits[1][0] else None


def cjk_bigrams(run: str) -> list[str]:
    """Overlapping character bigrams of a run of CJK text (one character alone stays a unigram)."""
    return [run] if len(run) == 1 else [run[i:i + 2] for i in range(len(run) - 1)]


class Tokenizer:
    """Tokenizes the same way for indexing and querying, whatever the backend, in each text's language."""

    def __init__(self, *, stemmer: str | None = "english", stopwords: str | None = "en", language: str = "en") -> None:
        if language not in LANGUAGE_CHOICES:
            raise ValueError(f"retriever.language must be auto or a language code with an analysis "
                             f"({', '.join(LANGUAGE_CHOICES[1:])}), got {language!r}")
        self.language = language
        self.stopwords = _stopword_set(stopwords)
        self.stemmer_name = stemmer if stemmer and stemmer != "none" else None
        self._stemmer = None
        if self.stemmer_name:
            import Stemmer

            try:
                self._stemmer = Stemmer.Stemmer(self.stemmer_name)
            except KeyError as err:
                raise ValueError(
                    f"retriever.stemmer {stemmer!r} is not a Snowball stemmer; one of "
                    f"{', '.join(Stemmer.algorithms())} or none"
                ) from err
        self._stem_cache: dict[str, str] = {}
        self._stemmers: dict[str, object | None] = {}
        self._stem_caches: dict[str, dict[str, str]] = {}
        self.candidates: frozenset[str] | None = None  # auto: the languages queries are told among (the corpus's)
        self.prior: str | None = None  # auto: the corpus's majority language

    # ------------------------------------------------------------------ languages
    def language_of(self, text: str) -> str:
        """The language ``text`` is analysed as: with a corpus (:meth:`restrict`), among its languages, its
        majority language unless the text's stopwords clearly say another (2 of them, twice its own)."""
        if self.language != "auto":
            return self.language
        return detect(text, self.candidates, self.prior, evidence=(2, 2.0))

    def restrict(self, languages: Iterable[str] | Mapping[str, float]) -> None:
        """``language=auto``: tell later texts (queries) apart among ``languages`` only (the corpus's); given
        their shares, the majority one (at least half) is the prior."""
        self.candidates = frozenset(languages) or None
        shares = languages if isinstance(languages, Mapping) else {}
        top = max(shares, key=shares.get, default=None)
        self.prior = top if top is not None and shares[top] >= 0.5 else None

    def _stemmer_for(self, language: str):
        if language == "en":
            return self._stemmer
        if language not in self._stemmers:
            name = ANALYSES.get(language, (None, None))[0]
            stemmer = None
            if name:
                import Stemmer

                try:
                    stemmer = Stemmer.Stemmer(name)
                except KeyError:  # an older PyStemmer without this algorithm: words unstemmed
                    stemmer = None
            self._stemmers[language] = stemmer
            self._stem_caches[language] = {}
        return self._stemmers[language]

    def _stem(self, words: list[str], stemmer, cache: dict[str, str]) -> list[str]:
        if stemmer is None:
            return words
        missing = [w for w in set(words) if w not in cache]
        if missing:
            cache.update(zip(missing, stemmer.stemWords(missing)))
        return [cache[w] for w in words]

    # ------------------------------------------------------------------ tokens
    def __call__(self, text: str, language: str | None = None) -> list[str]:
        if self.language == "en" and language is None:
            words = [w for w in _TOKEN.findall(text.lower()) if w not in self.stopwords]
            return self._stem(words, self._stemmer, self._stem_cache)
        return self.analyse(text, language or self.language_of(text))

    def analyse(self, text: str, language: str) -> list[str]:
        """``text`` analysed as ``language``: words lower-cased, less the language's stopwords, stemmed (English:
        this tokenizer's ``stemmer``/``stopwords``); in Chinese, Japanese and Korean text, runs of CJK characters as
        character bigrams. In text of another language a CJK run stays one token, as the English analysis always
        kept it (so English collections score as they did)."""
        lowered = text.lower()
        runs = _CJK.findall(lowered) if language in CJK_LANGUAGES else []
        rest = _CJK.sub(" ", lowered) if runs else lowered
        stop = self.stopwords if language == "en" else _language_stopwords(language)
        words = [w for w in _TOKEN.findall(rest) if w not in stop]
        stemmer = self._stemmer_for(language)
        words = self._stem(words, stemmer, self._stem_cache if language == "en" else self._stem_caches.get(language, {}))
        for run in runs:
            words += [g for g in cjk_bigrams(run) if g not in stop]
        return words

    def many(self, texts: Iterable[str]) -> list[list[str]]:
        return [self(t) for t in texts]

    def settings(self) -> dict[str, object]:
        base = {"stemmer": self.stemmer_name, "stopwords": sorted(self.stopwords), "pattern": _TOKEN.pattern}
        if self.language != "en":  # the English analysis alone keeps the settings (and so the cache keys) it had
            base.update({"language": self.language, "cjk": "bigrams in zh/ja/ko text",
                         "analyses": dict(ANALYSES)})
        return base


def detect_corpus(texts: Mapping[str, str]) -> dict[str, str]:
    """Each document's language (:func:`detect`), then, where one language holds a majority of the documents, the
    others detected again with it as the prior: a document is given another language only on clear evidence."""
    first = {d: detect(t) for d, t in texts.items()}
    mix = language_mix(first)
    majority = next(iter(mix), None)
    if majority is None or mix[majority] < 0.5 or majority in CJK_LANGUAGES:
        return first
    return {d: lang if lang == majority or lang in CJK_LANGUAGES else detect(texts[d], prior=majority)
            for d, lang in first.items()}


def language_mix(languages: Mapping[str, str] | Iterable[str]) -> dict[str, float]:
    """The share of each language among documents (``{doc: language}`` or a list of languages), largest first."""
    values = list(languages.values()) if isinstance(languages, Mapping) else list(languages)
    counts = Counter(values)
    return {lang: n / len(values) for lang, n in counts.most_common()} if values else {}


def batched(seq: Sequence, size: int) -> Iterable[Sequence]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]
