"""The `serve` web page in a real headless Chromium (Debian's chromium + chromium-driver)."""

from __future__ import annotations

import shutil
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from rag import ingest, provision
from rag.answer import Assistant
from rag.app import create_app
from rag.chat import OpenAIChat
from rag.embedder import Embedder
from rag.retrieval import Retriever
from rag.settings import Settings
from rag.store import connect
from tests.rag.chat_standin import ChatStandin
from tests.rag.conftest import Running
from tests.rag.standin_server import ThreadedServer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None or DRIVER is None,
        reason="chromium and chromedriver are not installed (apt-get install chromium chromium-driver)",
    ),
]


@pytest.fixture
def make_page(
    settings: Settings, make_corpus: Callable[..., Path], in_tmp: Path, serve: Callable[..., ThreadedServer]
) -> Iterator[Callable[..., str]]:
    """The URL of `serve`'s page over the ingested test corpus; keyword overrides change settings."""
    store, embedder = connect(settings), Embedder(settings)
    provision.setup(settings, store, embedder)
    # A 20-token budget cuts each Markdown and text file of the corpus in two chunks.
    small = replace(settings, chunk_tokens=20, chunk_overlap=0)
    ingest.ingest(small, store, embedder, ingest.load_documents([make_corpus()]))
    chats: list[OpenAIChat] = []

    def make(**overrides: object) -> str:
        tuned = replace(settings, **overrides)  # type: ignore[arg-type]
        chat = OpenAIChat(tuned)
        chats.append(chat)
        return (
            serve(create_app(Assistant(tuned, Retriever(tuned, store, embedder), chat, embedder))).url + "/"
        )

    yield make
    for chat in chats:
        chat.close()
    store.close()
    embedder.close()


@pytest.fixture
def page_url(make_page: Callable[..., str]) -> str:
    return make_page()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1000,800",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(DRIVER)), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and raw (unfiltered) RGBA-or-RGB rows of a PNG, enough to inspect colours."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    assert depth == 8 and colour in (2, 6)
    channels = 4 if colour == 6 else 3
    idat = b""
    pos = 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = prev[i]
            corner = prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, rows


def test_asking_in_the_page_renders_the_answer_and_its_citations(
    browser: object, page_url: str, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser
    driver.get(page_url)  # type: ignore[attr-defined]
    box = driver.find_element(By.ID, "question")  # type: ignore[attr-defined]
    # A chunk without a section prefix, so that the answer is one line across the box.
    box.send_keys("Which port does the embedding server listen on?")
    driver.find_element(By.ID, "ask").click()  # type: ignore[attr-defined]
    WebDriverWait(driver, 20).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "#citations li.citation"))
    )
    answer = driver.find_element(By.ID, "answer").text  # type: ignore[attr-defined]
    assert answer == "The embedding server listens on port 8000 by default. [1]"
    items = driver.find_elements(By.CSS_SELECTOR, "#citations li.citation")  # type: ignore[attr-defined]
    assert [i.find_element(By.CLASS_NAME, "source").text for i in items] == [
        "corpus/notes/servers.txt (chunk 0)"
    ]
    assert "1 cited of 5 passages" in driver.find_element(By.ID, "status").text  # type: ignore[attr-defined]

    shot = driver.get_screenshot_as_png()  # type: ignore[attr-defined]
    (tmp_path / "page.png").write_bytes(shot)
    width, height, rows = png_pixels(shot)
    assert width >= 600 and height >= 400
    # The answer box is drawn: its light blue background (#f1f5fb) and blue border (#1f5fbf) are on screen.
    box_rect = driver.find_element(By.ID, "answer").rect  # type: ignore[attr-defined]
    scale = width / driver.execute_script("return window.innerWidth")  # type: ignore[attr-defined]
    y = int((box_rect["y"] + box_rect["height"] / 2) * scale)
    x_border = int((box_rect["x"] + 1) * scale)
    channels = len(rows[0]) // width
    border = tuple(rows[y][x_border * channels : x_border * channels + 3])
    assert border == (0x1F, 0x5F, 0xBF)
    inked = sum(
        1
        for x in range(width)
        if tuple(rows[y][x * channels : x * channels + 3])
        not in ((0xF1, 0xF5, 0xFB), (0xFF, 0xFF, 0xFF), (0x1F, 0x5F, 0xBF))
    )
    assert inked > 20  # the answer's text is rendered across the box's middle line


def test_the_controls_and_the_api_key(
    browser: object, make_page: Callable[..., str], chat: Running[ChatStandin]
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser
    driver.get(make_page(serve_api_key="s3cret"))  # type: ignore[attr-defined]
    key = driver.find_element(By.ID, "api-key")  # type: ignore[attr-defined]
    assert key.is_displayed()
    driver.find_element(By.ID, "question").send_keys("Which port does the embedding server use?")  # type: ignore[attr-defined]
    driver.find_element(By.ID, "ask").click()  # type: ignore[attr-defined]
    status = driver.find_element(By.ID, "status")  # type: ignore[attr-defined]
    WebDriverWait(driver, 20).until(ec.text_to_be_present_in_element((By.ID, "status"), "API key"))
    assert "error" in status.get_attribute("class") and chat.standin.requests == []

    key.send_keys("s3cret")
    k = driver.find_element(By.ID, "k")  # type: ignore[attr-defined]
    k.clear()
    k.send_keys("2")
    driver.find_element(By.ID, "filters").send_keys("source=corpus/notes/servers.txt")  # type: ignore[attr-defined]
    driver.find_element(By.ID, "hybrid").click()  # type: ignore[attr-defined]
    driver.find_element(By.ID, "ask").click()  # type: ignore[attr-defined]
    WebDriverWait(driver, 20).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "#citations li.citation"))
    )
    sources = {
        i.find_element(By.CLASS_NAME, "source").text.split(" (")[0]
        for i in driver.find_elements(By.CSS_SELECTOR, "#citations li.citation")  # type: ignore[attr-defined]
    }
    assert sources == {"corpus/notes/servers.txt"}
    user = chat.standin.requests[-1]["messages"][1]["content"]
    # k=2 and the filter reached retrieval: at most two passages, all from the filtered file.
    assert 1 <= user.count("(source: ") <= 2 and user.count(
        "(source: corpus/notes/servers.txt"
    ) == user.count("(source: ")
    assert "tokens" in status.text
