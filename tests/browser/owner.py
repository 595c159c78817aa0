"""The owner's pages in headless Chromium through WebDriver (python3-selenium), driven by
tests/browser.rs: it reads one line from stdin whenever the test has done its part (a phone
registered, a call made, a ban made) and writes one line to stdout when the browser has done
its own. Screenshots of every page go to $HOTLINE_SCREENSHOTS.

The browser trusts exactly the server's certificate: its public key's SHA-256 is the only one
allowed (--ignore-certificate-errors-spki-list), and hotline.test resolves to [::1] for it.
"""

import base64
import hashlib
import os
import subprocess
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

URL = os.environ["HOTLINE_URL"]
CERTIFICATE = os.environ["HOTLINE_CERTIFICATE"]
PASSWORD = os.environ["HOTLINE_OWNER_PASSWORD"]
SHOTS = os.environ["HOTLINE_SCREENSHOTS"]


def spki_hash(pem_path):
    key = subprocess.run(
        ["openssl", "x509", "-pubkey", "-noout", "-in", pem_path],
        check=True, capture_output=True).stdout
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-outform", "der"],
        input=key, check=True, capture_output=True).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def say(line):
    print(line, flush=True)


def wait_for_test(expected):
    line = sys.stdin.readline().strip()
    assert line.startswith(expected), f"expected {expected!r} from the test, got {line!r}"
    return line[len(expected):].strip()


options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for argument in [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--window-size=1100,900", "--host-resolver-rules=MAP hotline.test [::1]",
    f"--ignore-certificate-errors-spki-list={spki_hash(CERTIFICATE)}",
]:
    options.add_argument(argument)
service = Service(executable_path="/usr/bin/chromedriver")
browser = webdriver.Chrome(options=options, service=service)
wait = WebDriverWait(browser, 20)


WINDOWS = {"": (1100, 900), "-phone": (390, 844)}


def shot(name):
    """Saves the whole page as a desktop and as a phone shows it: the window as tall as the
    page, then back to its size."""
    for suffix, (width, height) in WINDOWS.items():
        browser.set_window_size(width, height)
        full = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(width, max(height, full + 140))
        browser.save_screenshot(os.path.join(SHOTS, f"{name}{suffix}.png"))
    browser.set_window_size(*WINDOWS[""])


def link_and_qr():
    """The provisioning link shown once, with its QR code drawn."""
    notices = browser.find_elements(By.CLASS_NAME, "secret")
    link = next(n.text for n in notices if "/p/" in n.text)
    assert link.startswith(URL + "/p/"), link
    qr = browser.find_element(By.CSS_SELECTOR, ".qr svg")
    assert qr.size["width"] >= 150 and qr.size["width"] == qr.size["height"], qr.size
    return link


def text():
    return browser.find_element(By.TAG_NAME, "main").text


def submit(button_text, scope=browser):
    """Clicks the button and waits for the page it loads."""
    page = browser.find_element(By.TAG_NAME, "html")
    for button in scope.find_elements(By.TAG_NAME, "button"):
        if button.text == button_text:
            button.click()
            wait.until(ec.staleness_of(page))
            return
    raise AssertionError(f"no button {button_text!r} in {text()!r}")


def log_in(password):
    browser.get(URL + "/login")
    field = browser.find_element(By.NAME, "password")
    field.send_keys(password)
    submit("Log in")


def page(path, heading):
    browser.get(URL + path)
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), heading))
    return text()


try:
    browser.get(URL + "/phones")
    assert browser.current_url.endswith("/login"), browser.current_url
    shot("login")
    log_in("not the owner password")
    assert "Wrong password." in text(), text()
    log_in(PASSWORD)
    wait.until(ec.url_to_be(URL + "/"))
    say("LOGGED IN")

    page("/extensions", "Extensions")
    browser.find_element(By.NAME, "extension").send_keys("1000")
    browser.find_element(By.NAME, "name").send_keys("Alice <Desk>")
    submit("Add")
    secret = browser.find_element(By.CLASS_NAME, "secret").text
    assert len(secret) == 40 and secret.isdigit(), secret
    first_link = link_and_qr()
    shot("extensions-password")
    listed = page("/extensions", "Extensions")
    assert secret not in listed and first_link not in listed, listed
    shot("extensions")
    for row in browser.find_elements(By.TAG_NAME, "tr"):
        if "1000" in row.text:
            submit("New link", row)
            break
    link = link_and_qr()
    assert link != first_link, link
    shot("extensions-link")
    # The link in a browser: the settings card.
    browser.get(link)
    card = browser.find_element(By.TAG_NAME, "body").text
    assert "1000" in card and "TLS" in card, card
    say(f"PASSWORD {secret}")

    wait_for_test("REGISTERED")
    phones = page("/phones", "Phones")
    assert "Alice <Desk>" in phones and "baresip" in phones, phones
    shot("phones")
    say("PHONES OK")

    status = wait_for_test("CALLED")
    calls = page("/calls", "Calls")
    assert "1001" in calls and "1000" in calls and status in calls, calls
    shot("calls")
    say("CALLS OK")

    scope = wait_for_test("BANNED")
    security = page("/security", "Security")
    assert scope in security and "banned" in security, security
    shot("security")
    for row in browser.find_elements(By.TAG_NAME, "tr"):
        if scope in row.text:
            submit("Lift", row)
            break
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "main"), "No source is banned."))
    say("LIFTED")

    wait_for_test("REGISTERED AGAIN")
    overview = page("/", "Overview")
    assert "phones online" in overview, overview
    shot("overview")
    submit("Log out")
    wait.until(ec.url_to_be(URL + "/login"))
    shot("logout")
    browser.get(URL + "/")
    assert browser.current_url.endswith("/login"), browser.current_url
    say("LOGGED OUT")
except Exception:
    shot("failure")
    print(browser.current_url, browser.page_source[:2000], file=sys.stderr)
    raise
finally:
    browser.quit()
