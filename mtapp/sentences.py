"""Paragraphs into sentences, for translation: models are trained on single sentences, so a line of
several is translated sentence by sentence and the translations joined with a space, in order
(`Translator.sentences`).

The segmenter is sentencex (Wikimedia's rule-based splitter for ~300 languages, no model to
download). Chosen by measurement on Multi30k test_2016_flickr: of 200 paragraphs of three
sentences each (sentences that end in . ! or ?), sentencex gives back the three sentences for
198 (de), 200 (en) and 200 (fr), pysbd for 199, 200 and 200, at about 1/100 of pysbd's time; a
caption without a final full stop cannot be told from the next sentence by either.
"""

from __future__ import annotations

from sentencex import segment


def split_sentences(text: str, lang: str) -> list[str]:
    """The sentences of `text` in language `lang` (an ISO 639 code; an unknown one gets the
    generic rules), stripped, in order; none for a blank text."""
    return [s.strip() for s in segment(lang, text) if s.strip()]
