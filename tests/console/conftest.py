"""Headless Chromium for the console's browser tests: Debian's ``chromium`` and ``chromium-driver`` driven by
selenium. Missing ones are installed with apt-get when running as root in CI (CI=true, a fresh Debian machine);
elsewhere the tests skip, and in CI they never skip."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
IN_CI = bool(os.environ.get("CI"))
APT_TIMEOUT_S = 900


def _have_browser() -> bool:
    return os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)


def _install_browser() -> None:
    """apt-get install Debian's chromium and its driver (what a fresh CI machine needs)."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium", "chromium-driver"]):
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=APT_TIMEOUT_S)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-3000:]}")


def require_browser() -> tuple[str, str]:
    """Paths of chromium and chromedriver; installs them as root in CI; skips elsewhere when they are missing."""
    if not _have_browser() and IN_CI and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        _install_browser()
    if not _have_browser():
        if IN_CI:
            raise RuntimeError(
                f"{CHROMIUM} and {CHROMEDRIVER} are required in CI (apt-get install chromium chromium-driver)"
            )
        pytest.skip("no headless browser: apt-get install chromium chromium-driver (done by the tests as root in CI)")
    return CHROMIUM, CHROMEDRIVER


@pytest.fixture(scope="session")
def artefacts() -> Path:
    """Where the browser tests keep their screenshots (git-ignored); POCKETMQ_ARTEFACTS moves it."""
    default = Path(__file__).resolve().parents[2] / "test-artefacts" / "console"
    folder = Path(os.environ.get("POCKETMQ_ARTEFACTS", default))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def browser(artefacts: Path) -> Iterator[Any]:
    """One headless Chromium for the session."""
    chromium, chromedriver = require_browser()
    if not IN_CI:
        pytest.importorskip("selenium", reason="pip install -e '.[test]' brings selenium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,900", "--hide-scrollbars", "--lang=en-US"):  # fmt: skip
        options.add_argument(flag)
    # The driver's path is given, so selenium never looks for (or downloads) one of its own.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()
        print(f"\nconsole screenshots: {artefacts}")
