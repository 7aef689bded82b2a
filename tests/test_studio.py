"""The studio page in a real browser (Debian's Chromium, headless, driven by Playwright) against a live
server on the tiny random model: upload a card by drag and drop, make a card from the form end to
end (tiny forge), chat with a strength slider change, side by side with the base, delete; the
page by keyboard alone, at a phone's width, in Chinese, and behind an API key.

Screenshots go to $LIFECARD_ARTIFACTS (default tests/artifacts/studio/, git-ignored). The browser is
the system's (`apt-get install chromium`; `make test` installs it where apt-get exists); Playwright
never downloads one. Without /usr/bin/chromium these tests skip, saying so."""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_mounts import card
from test_server_api import KEYS, keys, serve
from test_studio_api import fake_eval, start_studio, world  # noqa: F401

from lifecard.cards.charcard import write_png_card
from lifecard.server.auth import Keys

CHROMIUM = os.environ.get("LIFECARD_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(os.environ.get("LIFECARD_ARTIFACTS") or Path(__file__).parent / "artifacts") / "studio"
WAIT_MS = 20_000  # the longest any single wait may take

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: run `make test`")
if not Path(CHROMIUM).is_file():
    pytest.skip(
        f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` (make test does it as root)",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def site(world: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:  # noqa: F811
    """An open (no keys) server, as `make run` starts it, with the real forge."""
    app, store = start_studio(world, tmp_path_factory.mktemp("browser-store"), Keys())
    with serve(app) as url:
        yield url, store


@pytest.fixture(scope="module")
def page(browser: Any, site: tuple[str, Any]) -> Iterator[Any]:
    """One page that the workflow tests below walk through in order, as a newcomer would."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(site[0] + "/")
    page.wait_for_selector("body[data-ready=true]")
    page.errors = errors  # checked at the end of each test
    yield page
    context.close()


def shot(page: Any, name: str, full: bool = True) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full)


def no_page_errors(page: Any) -> None:
    # a refused upload or request logs a failed resource load: that is expected, script errors are not
    problems = [e for e in page.errors if "Failed to load resource" not in e]
    assert not problems, problems


def wait_text(page: Any, selector: str, text: str) -> None:
    page.wait_for_function(
        "([s, t]) => document.querySelector(s).textContent.includes(t)", arg=[selector, text]
    )


def replies_done(page: Any, count: int) -> None:
    """Wait until `count` assistant replies have finished streaming in the visible columns."""
    finished = ".column:not([hidden]) .msg.assistant[aria-busy=false]"
    page.wait_for_function("([s, n]) => document.querySelectorAll(s).length === n", arg=[finished, count])


def drop_file(page: Any, selector: str, name: str, blob: bytes) -> None:
    """Drag and drop a file onto `selector`, as a person dragging it from their file manager."""
    page.evaluate(
        """([selector, name, data]) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name));
            const target = document.querySelector(selector);
            for (const type of ["dragenter", "dragover", "drop"]) {
                const init = {bubbles: true, cancelable: true, dataTransfer: transfer};
                target.dispatchEvent(new DragEvent(type, init));
            }
        }""",
        [selector, name, base64.b64encode(blob).decode()],
    )


# --- the newcomer's walk: upload, make, chat, side by side, delete ---------------------------------


def test_upload_a_card_by_drag_and_drop(page: Any, site: tuple[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "owl.card"
    card(site[1].base, "owl", rank=2, steer=True).write(path)
    drop_file(page, "#drop", "owl.card", path.read_bytes())
    tile = page.locator("#gallery li[data-card=owl]")
    tile.wait_for()
    assert "Owl" in tile.locator("h3").inner_text()
    assert page.locator("#cards-status").inner_text() == "Card “Owl” is ready."
    text = tile.inner_text()
    for shown in ("LoRA rank 2", "steering", "unsigned", "Base", "Size"):
        assert shown in text, text
    # a file that is not a card: refused by the server, the reason shown in words
    page.set_input_files("#upload-input", {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"})
    wait_text(page, "#cards-error", "not a character card")
    shot(page, "1-gallery-after-upload")
    no_page_errors(page)


def test_a_character_card_dropped_in_becomes_a_life_card(page: Any) -> None:
    persona = {"name": "Captain Kestrel", "description": "A sky pirate.", "tags": ["pirate", "sky"]}
    page.select_option("#import-budget", "tiny")
    drop_file(page, "#drop", "kestrel.png", write_png_card(persona))
    wait_text(page, "#cards-status", "Captain Kestrel")
    assert "tiny" in page.locator("#cards-status").inner_text()
    tile = page.locator("#gallery li[data-card=captain-kestrel]")
    tile.wait_for(timeout=60_000)  # the pending job becomes a card when its tiny bake is done
    avatar = tile.locator("img.avatar")
    assert avatar.get_attribute("alt") == "Avatar of Captain Kestrel"
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=avatar.element_handle())
    assert "pirate" in tile.locator(".tags").inner_text()
    assert page.locator("#pending li").count() == 0
    shot(page, "1b-gallery-character-card")
    no_page_errors(page)


def test_make_a_small_card_end_to_end(
    page: Any, site: tuple[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the real forge and the real (quick) eval on the tiny model
    page.click("#tab-make")
    page.click("#make-submit")  # no name yet: said in words, focus on the field
    assert page.locator("#make-error").inner_text() == "Give the card a name first."
    assert page.evaluate("document.activeElement.id") == "f-name"
    page.fill("#f-name", "Mira Vale")
    page.fill("#f-identity", "A lighthouse keeper on a small northern island.")
    page.fill("#f-tone", "calm and dry")
    page.fill("#f-like", "You talk about the sea and the weather.")
    page.fill("#f-preferences", "tea\nstorms")
    page.click("#add-fact")
    page.fill("#facts li:last-child [data-field=fact]", "I live on Skerry island.")
    page.fill("#facts li:last-child [data-field=questions]", "Where do you live?\nWhat is your home?")
    page.fill("#facts li:last-child [data-field=answer]", "Skerry")
    page.click("#add-dialogue")
    page.fill("#dialogues li:last-child [data-field=user]", "Hello!")
    page.fill("#dialogues li:last-child [data-field=assistant]", "Mind the lamp, friend.")
    page.check("input[name=budget][value=tiny]")
    shot(page, "2-make-form")
    with page.expect_response(lambda r: r.url.endswith("/v1/forge") and r.request.method == "POST") as sent:
        page.click("#make-submit")
    assert sent.value.status == 202
    body = json.loads(sent.value.request.post_data)
    assert body["budget"] == "tiny" and body["profile"]["knowledge"][0]["answer"] == ["Skerry"]
    assert body["profile"]["tone"]["like"].startswith("You talk about the sea")
    mira = "#jobs article.job:has-text('Mira Vale')"
    job = page.locator(mira)
    job.wait_for()
    try:  # the live bar, while it runs (a tiny forge may finish before the first poll)
        job.locator("progress").wait_for(timeout=3000)
        shot(page, "3-make-progress")
    except sync_api.TimeoutError:
        pass
    page.locator(f"{mira}.done").wait_for(timeout=60_000)
    done = page.locator(mira).inner_text()
    assert "Mira Vale" in done and "ready" in done and "profile" in done  # the forge's figures
    assert "drift" in done and "recall" in done and "Brontë" not in done  # the eval's numbers, no notes
    plot = page.locator(f"{mira} .plots img")
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=plot.element_handle())
    shot(page, "4-make-done")
    page.reload()  # the job outlives a reload
    page.wait_for_selector("body[data-ready=true]")
    assert "ready" in page.locator(mira).inner_text()
    page.click("#tab-cards")
    tile = page.locator("#gallery li[data-card=mira-vale]").inner_text()
    assert "tiny budget" in tile and "recall" in tile
    no_page_errors(page)


def test_chat_with_a_slider_change_side_by_side_with_the_base(page: Any) -> None:
    page.click("#tab-make")
    page.locator(
        "#jobs article.job:has-text('Mira Vale') button.primary"
    ).click()  # "Chat with it next to the base"
    assert page.locator("#tab-chat").get_attribute("aria-selected") == "true"
    assert page.is_checked("#side-by-side") and page.is_checked("#use-mira-vale")
    page.locator("details:has(#s-max) summary").click()
    page.fill("#s-max", "12")
    page.fill("#s-temperature", "0")
    slider = page.locator("#strength-mira-vale")
    slider.focus()
    for _ in range(6):  # the keyboard moves the slider: 1.00 → 0.70
        page.keyboard.press("ArrowLeft")
    assert page.locator("output[for=strength-mira-vale]").inner_text() == "0.70"
    assert slider.get_attribute("aria-valuetext") == "0.70"
    assert "Mira Vale 0.70" in page.locator("#col-cards-title").inner_text()

    bodies: list[dict[str, Any]] = []
    page.on(
        "request",
        lambda r: bodies.append(json.loads(r.post_data)) if r.url.endswith("/v1/chat/completions") else None,
    )
    page.fill("#prompt", "Who are you?")
    page.keyboard.press("Enter")
    replies_done(page, 2)
    assert len(bodies) == 2
    with_cards = next(b for b in bodies if "cards" in b)
    base = next(b for b in bodies if "cards" not in b)
    assert with_cards["cards"] == [{"id": "mira-vale", "strength": 0.7}] and with_cards["stream"]
    assert base["model"] == "base" and base["messages"] == with_cards["messages"]
    assert with_cards["max_tokens"] == 12 and with_cards["temperature"] == 0
    for column in ("#col-base", "#col-cards"):
        assert page.locator(f"{column} .msg.user").inner_text().endswith("Who are you?")
    shot(page, "5-chat-side-by-side")

    # the slider changes the next reply, and the conversation carries on in each column
    slider.focus()
    page.keyboard.press("End")  # the card's maximum strength
    page.fill("#prompt", "And where do you live?")
    page.click("#send")
    replies_done(page, 4)
    latest = next(b for b in reversed(bodies) if "cards" in b)
    assert latest["cards"][0]["strength"] == 2.0 and len(latest["messages"]) == 3
    assert page.locator("#chat-error").inner_text() == ""
    shot(page, "6-chat-second-turn")
    no_page_errors(page)


def test_dashboard_shows_the_servers_figures(page: Any) -> None:
    page.click("#tab-dashboard")
    page.wait_for_function("() => document.querySelectorAll('#stats .stat').length >= 8")
    text = page.locator("#stats").inner_text()
    for shown in (
        "Tokens per second",
        "Cards mounted",
        "Card memory",
        "Requests waiting",
        "Cards being made",
    ):
        assert shown in text, text
    shot(page, "7-dashboard")


def test_delete_a_card(page: Any, site: tuple[str, Any]) -> None:
    page.click("#tab-cards")
    page.once("dialog", lambda d: d.accept())
    page.click("#gallery li[data-card=mira-vale] button.danger")
    page.locator("#gallery li[data-card=mira-vale]").wait_for(state="detached")
    assert page.locator("#cards-status").inner_text() == "Card “Mira Vale” deleted."
    assert site[1].get("mira-vale") is None
    page.once("dialog", lambda d: d.dismiss())  # "cancel" keeps the card
    page.click("#gallery li[data-card=owl] button.danger")
    assert page.locator("#gallery li[data-card=owl]").count() == 1
    shot(page, "8-gallery-after-delete")
    no_page_errors(page)


# --- keyboard, phone, language, keys ------------------------------------------------------------


def test_the_page_works_by_keyboard_alone(browser: Any, site: tuple[str, Any]) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(site[0] + "/")
    page.wait_for_selector("body[data-ready=true]")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    focused = []
    for _ in range(6):
        page.keyboard.press("Tab")
        focused.append(page.evaluate("document.activeElement.id || document.activeElement.tagName"))
    assert "tab-cards" in focused and "tab-make" not in focused  # one tab stop for the tab list
    page.focus("#tab-cards")
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.id") == "tab-make"
    assert page.is_visible("#panel-make") and not page.is_visible("#panel-cards")
    page.keyboard.press("End")
    assert page.evaluate("document.activeElement.id") == "tab-dashboard"
    page.keyboard.press("Home")
    page.keyboard.press("ArrowLeft")  # wraps around
    assert page.evaluate("document.activeElement.id") == "tab-dashboard"
    page.keyboard.press("ArrowLeft")
    assert page.evaluate("document.activeElement.id") == "tab-chat"
    # every control on every panel has a name a screen reader can say
    unnamed = page.evaluate(
        """() => Array.from(document.querySelectorAll('input, select, textarea, button'))
            .filter((el) => el.type !== 'hidden' && !(el.labels && el.labels.length)
                && !el.getAttribute('aria-label') && !el.textContent.trim())
            .map((el) => el.id || el.outerHTML.slice(0, 80))"""
    )
    assert unnamed == []
    # focus is always visible; the upload is reached by Tab (the file input takes focus, its button
    # shows it) and Enter or Space would open the file picker
    page.focus("#tab-cards")
    page.keyboard.press("Enter")
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"
    page.keyboard.press("Tab")  # the panel itself
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "upload-input"
    assert page.evaluate("getComputedStyle(document.querySelector('#drop .button')).outlineStyle") == "solid"
    shot(page, "9-keyboard-focus", full=False)
    context.close()


def test_phone_width_has_no_sideways_scroll(browser: Any, site: tuple[str, Any]) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(site[0] + "/#cards")
    page.wait_for_selector("body[data-ready=true]")
    for tab in ("cards", "make", "chat", "dashboard"):
        page.click(f"#tab-{tab}")
        if tab == "dashboard":
            page.wait_for_function("() => document.querySelectorAll('#stats .stat').length >= 8")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"{tab}: the page is {width}px wide at a 375px viewport"
        shot(page, f"10-phone-{tab}")
    context.close()


def test_chinese_words_switch_and_stay(browser: Any, site: tuple[str, Any]) -> None:
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(site[0] + "/")
    page.wait_for_selector("body[data-ready=true]")
    page.click("#lang")
    assert page.locator("#tab-cards").inner_text() == "卡片"
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    assert "基座" in page.locator("#gallery").inner_text()
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert page.locator("#tab-make").inner_text() == "制作卡片"  # remembered
    shot(page, "11-chinese")
    page.click("#lang")
    assert page.locator("#tab-make").inner_text() == "Make a card"
    context.close()


def test_behind_api_keys_the_page_asks_for_one(
    browser: Any,
    world: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    app, store = start_studio(world, tmp_path, keys())
    with serve(app) as url:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEYS['alice']}"}) as c:
            blob = tmp_path / "kit.card"
            card(store.base, "kit", rank=2).write(blob)
            c.post("/v1/cards", content=blob.read_bytes())
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.goto(url + "/")
        page.locator("#keybar").wait_for()
        assert page.evaluate("document.activeElement.id") == "key-input"
        page.fill("#key-input", "sk-wrong")
        page.keyboard.press("Enter")
        wait_text(page, "#key-error", "API key")
        page.fill("#key-input", KEYS["alice"])
        page.keyboard.press("Enter")
        page.locator("#gallery li[data-card=kit]").wait_for()
        assert page.is_hidden("#keybar")
        shot(page, "12-key-entered")
        page.reload()  # the key stays in this browser
        page.locator("#gallery li[data-card=kit]").wait_for()
        context.close()
