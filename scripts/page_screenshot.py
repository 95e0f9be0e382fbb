"""Screenshot a running `python -m mtapp.serve` page after translating a text, in headless Chromium.

    python scripts/page_screenshot.py --url http://127.0.0.1:8000 --text-file para.txt --out docs/serve_page.png
        [--alternatives LINE]   (also click the LINE-th output line, from 1, to show its alternatives)

Needs chromium and chromium-driver (Debian packages) and selenium (the dev extra).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True, help="the server's address")
    p.add_argument("--text-file", type=Path, required=True, help="what to type into the page")
    p.add_argument("--out", type=Path, required=True, help="the PNG to write")
    p.add_argument("--alternatives", type=int, help="click this output line (from 1) to show its alternatives")
    p.add_argument("--size", default="1400,900", help="window size W,H (default: %(default)s)")
    args = p.parse_args(argv)
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver") or next(
        (p for p in ("/usr/lib/chromium/chromedriver", "/usr/bin/chromedriver") if Path(p).exists()), None
    )
    if not browser or not driver:
        print("error: needs chromium and chromedriver (apt-get install chromium chromium-driver)", file=sys.stderr)
        return 2
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--hide-scrollbars"):
        options.add_argument(flag)
    options.add_argument(f"--window-size={args.size}")
    page = webdriver.Chrome(service=Service(driver), options=options)
    try:
        page.get(args.url.rstrip("/") + "/")
        page.find_element(By.ID, "source").send_keys(args.text_file.read_text(encoding="utf-8").strip())
        page.find_element(By.ID, "go").click()
        WebDriverWait(page, 120).until(lambda p: "translated in" in p.find_element(By.ID, "info").text)
        if args.alternatives:
            page.find_elements(By.CSS_SELECTOR, "#output .line")[args.alternatives - 1].click()
            WebDriverWait(page, 120).until(lambda p: p.find_elements(By.CSS_SELECTOR, "#alternatives li"))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        page.save_screenshot(str(args.out))
    finally:
        page.quit()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
