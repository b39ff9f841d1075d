"""The "draw a digit" page and Swagger UI in a real browser: headless Chromium driven by Selenium against
the real gateway (``python -m gateway``) serving a real exported model on two stacks (embedded PyTorch
and embedded TensorFlow).

A 7 is drawn on the page with WebDriver pointer actions (a mouse stroke and a pen stroke), Classify is
clicked and every stack's answer is read from the page; a real MNIST test digit is uploaded as a PNG;
Swagger UI at /docs must load /openapi.json, list every operation and answer "Try it out" with the
spec's example. Screenshots go to the test's temp dir. Skipped only where no Chromium (and its
driver) is installed: ``make test`` installs them where it can (Debian ``chromium chromium-driver``).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from exporters.mnist import MnistData
from gateway.openapi import document
from model_store import ModelStore
from tests.integration.gateway.conftest import free_port, start, stop, wait_until_ok

pytestmark = pytest.mark.integration

BACKENDS = ("embedded-pytorch", "embedded-tensorflow")
WAIT_S = 30
SCREENSHOTS = os.environ.get("BROWSER_TEST_SCREENSHOTS")  # a folder to copy the screenshots to, if set


def _find(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


CHROMIUM = _find("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMEDRIVER = _find("chromedriver", "chromium-driver")
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip(
        "no Chromium found (need chromium and chromedriver on PATH; Debian: apt-get install chromium "
        "chromium-driver; `make test` installs them where it can)",
        allow_module_level=True,
    )

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the dev extra)")
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.common.actions import interaction  # noqa: E402
from selenium.webdriver.common.actions.action_builder import ActionBuilder  # noqa: E402
from selenium.webdriver.common.actions.pointer_input import PointerInput  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def gateway(exported_store: ModelStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("page")
    routing = folder / "routing.yaml"
    weights = ", ".join(f"{backend}: 1" for backend in BACKENDS)
    routing.write_text(f"models: {{mnist: {{backends: {{{weights}}}}}}}\n")
    port = free_port()
    env = {
        "GATEWAY_BIND": f"127.0.0.1:{port}",
        "GATEWAY_WORKERS": "1",
        "GATEWAY_ROUTING_FILE": str(routing),
        "GATEWAY_MODEL_STORE": str(exported_store.root),
    }
    process = start(["-m", "gateway"], env, folder / "gateway.log")
    try:
        wait_until_ok(f"http://127.0.0.1:{port}/readyz", 90, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container has no user namespace sandbox
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1200,860",
        "--force-device-scale-factor=1",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    try:
        driver.set_page_load_timeout(WAIT_S)
        driver.set_script_timeout(WAIT_S)
        yield driver
    finally:
        driver.quit()


@pytest.fixture(autouse=True)
def _fresh_console(browser: Any) -> None:
    """Console messages of an earlier test (the error test's 404s) are not this test's."""
    browser.get_log("browser")


def _screenshot(driver: Any, path: Path) -> None:
    driver.save_screenshot(str(path))
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(SCREENSHOTS) / path.name)


def _api_digits(base: str, image: list[list[float]]) -> dict[str, int]:
    """What the API answers for ``image`` on each backend: the page must show the same."""
    digits = {}
    for backend in BACKENDS:
        request = urllib.request.Request(
            base + "/v1/models/mnist:classify",
            json.dumps({"image": image}).encode(),
            {"Content-Type": "application/json", "X-Gateway-Backend": backend},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            digits[backend] = json.loads(response.read())["predictions"][0]["digit"]
    return digits


def _answers(driver: Any) -> dict[str, dict[str, str]]:
    """Wait for the page to finish a classification; each stack's card as text fields."""
    try:
        WebDriverWait(driver, WAIT_S).until(
            lambda d: d.find_element(By.ID, "results").get_attribute("data-state") == "done"
        )
    except TimeoutException:
        raise AssertionError(f"no answer on the page; it says {_summary(driver)!r}") from None
    cards = {}
    for card in driver.find_elements(By.CSS_SELECTOR, "#results .card"):
        fields = {"digit": card.get_attribute("data-digit") or "", "error": card.get_attribute("data-error")}
        for name in ("version", "client", "gateway", "backend"):
            found = card.find_elements(By.CSS_SELECTOR, f"dd[data-field={name}]")
            fields[name] = found[0].text if found else ""
        fields["bars"] = str(len(card.find_elements(By.CSS_SELECTOR, ".bar")))
        fields["disagree"] = str("disagree" in (card.get_attribute("class") or ""))
        cards[card.get_attribute("data-backend") or ""] = fields
    return cards


def _summary(driver: Any) -> str:
    return str(driver.find_element(By.ID, "summary").text)


def _check_answers(cards: dict[str, dict[str, str]], expected: dict[str, int]) -> None:
    assert set(cards) == set(BACKENDS), cards
    for backend, card in cards.items():
        assert not card["error"], f"{backend}: {card['error']}"
        assert card["digit"] == str(expected[backend]), (backend, card, expected)
        assert card["version"] == "1" and card["bars"] == "10", card
        for timing in ("client", "gateway", "backend"):
            assert card[timing].endswith(" ms") and float(card[timing][:-3]) >= 0, (timing, card)
    agree = len(set(expected.values())) == 1
    assert all(card["disagree"] == str(not agree) for card in cards.values()), cards


def _stroke(driver: Any, canvas: Any, points: list[tuple[int, int]], kind: str) -> None:
    """One stroke through ``points`` (pad pixels, 0..280 from the top left) with a mouse or a pen."""
    pointer = PointerInput(interaction.POINTER_PEN if kind == "pen" else interaction.POINTER_MOUSE, kind)
    actions = ActionBuilder(driver, mouse=pointer, duration=10)
    origin = canvas.rect
    border = int(driver.execute_script("return arguments[0].clientLeft", canvas))

    def move(x: float, y: float) -> None:  # viewport coordinates of a pad pixel
        actions.pointer_action.move_to_location(int(origin["x"] + border + x), int(origin["y"] + border + y))

    move(*points[0])
    actions.pointer_action.pointer_down()
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        for step in range(1, 9):
            move(x0 + (x1 - x0) * step / 8, y0 + (y1 - y0) * step / 8)
    actions.pointer_action.pointer_up()
    actions.perform()


def _no_outside_requests(driver: Any, base: str) -> None:
    """Everything the page loaded came from the gateway (no CDN: it must work offline)."""
    names = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    outside = [name for name in names if not name.startswith(base)]
    assert not outside, outside


def _console_errors(driver: Any) -> list[str]:
    return [
        entry["message"]
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE" and "favicon.ico" not in entry["message"]
    ]


def test_draw_a_seven_and_every_stack_answers(browser: Any, gateway: str, tmp_path: Path) -> None:
    browser.get(gateway + "/")
    assert "draw a digit" in browser.title
    canvas = browser.find_element(By.ID, "pad")
    assert canvas.size == {"width": 284, "height": 284}  # 280 + the 2 px border on each side
    # MNIST's 7: a top bar, then a long diagonal down to the left (thick strokes, like the data set's).
    _stroke(browser, canvas, [(62, 58), (140, 54), (218, 56)], "mouse")
    _stroke(browser, canvas, [(214, 60), (176, 130), (140, 200), (122, 250)], "pen")
    browser.find_element(By.ID, "classify").click()
    cards = _answers(browser)
    _screenshot(browser, tmp_path / "page-seven.png")
    sent = browser.execute_script("return mnistGrid()")
    assert len(sent) == 28 and all(len(row) == 28 for row in sent)
    assert all(0 <= value <= 1 for row in sent for value in row)
    api = _api_digits(gateway, sent)
    _check_answers(cards, api)  # the page shows what the API says for the image it sent...
    assert api == dict.fromkeys(BACKENDS, 7), api  # ...and that is a 7 on every stack
    assert "say 7" in _summary(browser)
    _no_outside_requests(browser, gateway)
    assert not _console_errors(browser)


def test_upload_a_test_digit(browser: Any, gateway: str, mnist: MnistData, tmp_path: Path) -> None:
    """A real MNIST test digit (not a 7) that both stacks classify right through the API, as a PNG."""
    images, labels = mnist.test_images[:50], mnist.test_labels[:50]
    for image, label in zip(images, labels, strict=True):
        if label == 7:
            continue
        grid = (image.astype(np.float32) / 255.0).tolist()
        if _api_digits(gateway, grid) == dict.fromkeys(BACKENDS, int(label)):
            break
    else:
        pytest.fail("no test digit among the first 50 that both stacks classify right")
    png = tmp_path / f"digit-{label}.png"
    Image.fromarray(image.astype(np.uint8), mode="L").save(png)
    browser.get(gateway + "/")
    browser.find_element(By.ID, "upload").send_keys(str(png))  # classifies at once
    cards = _answers(browser)
    _screenshot(browser, tmp_path / "page-upload.png")
    _check_answers(cards, dict.fromkeys(BACKENDS, int(label)))
    assert not _console_errors(browser)


def test_errors_show_the_api_message(browser: Any, gateway: str) -> None:
    browser.get(gateway + "/")
    browser.find_element(By.ID, "classify").click()
    assert "empty" in _summary(browser)  # nothing drawn: said on the page, nothing sent
    _stroke(browser, browser.find_element(By.ID, "pad"), [(100, 100), (180, 180)], "mouse")
    browser.execute_script(  # a model the gateway does not route: the API's own message must show
        "const o = document.createElement('option'); o.value = o.textContent = 'nope';"
        "const s = document.getElementById('model'); s.append(o); s.value = 'nope';"
    )
    browser.find_element(By.ID, "classify").click()
    _answers(browser)
    assert "unknown model 'nope'" in _summary(browser)
    # The 404 reaches the console log a little later; taken here, it is not counted in the next test.
    WebDriverWait(browser, WAIT_S).until(lambda d: any("nope" in e["message"] for e in d.get_log("browser")))


def test_swagger_ui_lists_every_operation_and_tries_one(browser: Any, gateway: str, tmp_path: Path) -> None:
    browser.get(gateway + "/docs")
    wait = WebDriverWait(browser, WAIT_S)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock"))
    shown = {
        (block.find_element(By.CSS_SELECTOR, ".opblock-summary-method").text.lower(),
         block.find_element(By.CSS_SELECTOR, ".opblock-summary-path").get_attribute("data-path"))
        for block in browser.find_elements(By.CSS_SELECTOR, ".opblock")
    }  # fmt: skip
    spec = document()
    expected = {(method, path) for path, item in spec["paths"].items() for method in item}
    assert shown == expected
    assert spec["info"]["title"] in browser.find_element(By.CSS_SELECTOR, ".info .title").text
    _screenshot(browser, tmp_path / "docs.png")
    # "Try it out" with the spec's example body (a 7) on the TF Serving predict endpoint.
    block = browser.find_element(By.ID, "operations-predict-post_v1_models__model__predict")
    block.find_element(By.CSS_SELECTOR, ".opblock-summary-control").click()
    wait.until(lambda d: block.find_elements(By.CSS_SELECTOR, ".try-out__btn"))
    block.find_element(By.CSS_SELECTOR, ".try-out__btn").click()
    model = block.find_element(By.CSS_SELECTOR, "tr[data-param-name='model'] input")
    if not model.get_attribute("value"):
        model.send_keys("mnist")
    block.find_element(By.CSS_SELECTOR, ".execute").click()
    wait.until(
        lambda d: block.find_elements(By.CSS_SELECTOR, ".live-responses-table tbody .response-col_status")
    )
    status = block.find_element(By.CSS_SELECTOR, ".live-responses-table tbody .response-col_status").text
    body = block.find_element(By.CSS_SELECTOR, ".live-responses-table .microlight").text
    browser.execute_script("arguments[0].scrollIntoView()", block)
    _screenshot(browser, tmp_path / "docs-try-it-out.png")
    assert status.startswith("200"), (status, body)
    probabilities = json.loads(body)["predictions"][0]
    assert int(np.argmax(probabilities)) == 7
    _no_outside_requests(browser, gateway)
    assert not _console_errors(browser)
