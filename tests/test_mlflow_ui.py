"""What a user finds in `mlflow ui` after a sweep, in a real browser: a real `mlflow server` over a 2-job smoke
sweep's SQLite store, driven by headless Chromium through Selenium. The run header's link opens the classic
runs table (not MLflow 3's GenAI view), the sweep is one expandable parent with its children, a summary metric
can be added as a column, and a run shows its eval/* charts, image grids, models and the parent its summary.

ACAI_DOCS_SCREENSHOTS=<folder> saves the screenshots of docs/mlflow-ui.md there (nothing is written otherwise)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from test_sweep import ENV, EVAL_STEPS, TINY, TRAIN, store, tail
from tracking_server import MlflowServer

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
pytestmark = [pytest.mark.slow,  # a training sweep, a server and a browser
              pytest.mark.skipif(not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
                                 reason="needs Debian's chromium and chromium-driver (/usr/bin/chromium, "
                                        "/usr/bin/chromedriver): apt-get install chromium chromium-driver")]
webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium: pip install -e '.[dev]'")
CLASSIC = "workflowType=machine_learning"
WAIT = 90  # seconds for a page to render on a loaded 2-core machine
CHILDREN = ["acai-lines-mlp-z64-s0", "none-lines-mlp-z64-s0"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """`-m regularizer=acai,none`: two tiny jobs with their models, one parent run."""
    tmp = tmp_path_factory.mktemp("ui")
    tiny = [arg for arg in TINY if arg != "tracking.log_model=false"]  # the models are part of the tour
    done = subprocess.run([*TRAIN, "-m", "regularizer=acai,none", *tiny, *store(tmp),
                           f"hydra.sweep.dir={tmp / 'multirun'}"],
                          cwd=tmp, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, tail(done.stderr)
    client = MlflowClient(f"sqlite:///{tmp}/mlflow.db")
    experiment = client.get_experiment_by_name("smoke")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    parent = next(r for r in runs.values() if "acai.sweep_parent" in r.data.tags)
    return tmp, experiment, runs, parent, done.stdout


@pytest.fixture(scope="module")
def ui(sweep):
    """`mlflow server` on a free 127.0.0.1 port over the sweep's store; its base URL."""
    tmp = sweep[0]
    with MlflowServer(f"sqlite:///{tmp}/mlflow.db", tmp / "served", log=tmp / "server.log", timeout=180) as server:
        yield server.uri


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium, 1400x900, with a fresh profile (so MLflow's stored view choice starts at its default)."""
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_window_size(1400, 900)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def shots():
    """Where to save the docs' screenshots, or None (the default: the tests write nothing)."""
    folder = os.environ.get("ACAI_DOCS_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
    return Path(folder) if folder else None


def by_text(text: str, exact: bool = True) -> tuple[str, str]:
    """An element whose own text (not its descendants') is `text`, or contains it."""
    test = f"normalize-space(text())='{text}'" if exact else f"text()[contains(normalize-space(.), '{text}')]"
    return "xpath", f"//*[{test}]"


def wait_for(driver, text: str, exact: bool = True, timeout: float = WAIT):
    """The first visible element showing `text`, once the page has rendered it."""
    from selenium.webdriver.support.ui import WebDriverWait

    def visible(d):
        return next((e for e in d.find_elements(*by_text(text, exact)) if e.is_displayed()), False)

    return WebDriverWait(driver, timeout, poll_frequency=0.5).until(
        visible, f"no visible {text!r} within {timeout} s on {driver.current_url}")


def click(driver, element) -> None:
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
    driver.execute_script("arguments[0].click();", element)


def page_text(driver) -> str:
    return driver.find_element("tag name", "body").text


def close_assistant(driver) -> None:
    """The 'MLflow Assistant' side panel opens with every page: close it, for room and clean screenshots."""
    panels = [e for e in driver.find_elements(*by_text("MLflow Assistant")) if e.is_displayed()]
    for title in panels:
        buttons = title.find_elements("xpath", "./ancestor::div[count(.//button) >= 2][1]//button")
        if buttons:
            click(driver, buttons[-1])


def screenshot(driver, shots: Path | None, name: str) -> None:
    if shots is not None:
        time.sleep(2)  # let charts and images finish drawing
        driver.save_screenshot(str(shots / f"mlflow-ui-{name}.png"))


def open_page(driver, base: str, page: str) -> None:
    driver.get(f"{base}/#/{page}")


def test_the_header_link_opens_the_classic_runs_table_with_the_sweep_as_one_parent(sweep, ui, browser, shots):
    tmp, experiment, runs, parent, stdout = sweep
    assert experiment.tags.get("mlflow.experimentKind") == "custom_model_development"
    # Without the parameter MLflow 3.17 opens the experiment in its GenAI view despite that tag ...
    open_page(browser, ui, f"experiments/{experiment.experiment_id}")
    wait_for(browser, "Detect Issues", exact=False)
    assert "Run Name" not in page_text(browser)
    # ... the header's link opens the runs table
    link = f"http://127.0.0.1:5000/#/experiments/{experiment.experiment_id}?{CLASSIC}"
    assert f"then {link}" in stdout
    browser.get(link.replace("http://127.0.0.1:5000", ui))
    wait_for(browser, "Run Name")
    wait_for(browser, "Columns")
    close_assistant(browser)
    row = wait_for(browser, parent.info.run_name[:20], exact=False)
    assert all(name not in page_text(browser) for name in CHILDREN)  # collapsed: one row for the sweep
    expand = row.find_elements("xpath", "./ancestor::*[contains(@class, 'ag-cell-value')][1]//button")
    assert expand, "no expand button on the sweep's row"
    click(browser, expand[0])
    for name in CHILDREN:
        wait_for(browser, name)
    screenshot(browser, shots, "runs")


def test_a_summary_metric_can_be_added_as_a_column(sweep, ui, browser, shots):
    experiment = sweep[1]
    if "Run Name" not in page_text(browser):
        browser.get(f"{ui}/#/experiments/{experiment.experiment_id}?{CLASSIC}")
        wait_for(browser, "Run Name")
    click(browser, wait_for(browser, "Columns"))
    search = next(e for e in browser.find_elements("css selector", "input") if e.is_displayed()
                  and "search" in (e.get_attribute("placeholder") or "").lower() and "metrics.rmse" not in
                  (e.get_attribute("placeholder") or ""))
    search.send_keys("summary/mean_distance")
    click(browser, wait_for(browser, "summary/mean_distance"))
    browser.find_element("tag name", "body").send_keys("\ue00c")  # Escape closes the menu
    header = wait_for(browser, "summary/mean_distance")
    assert header.find_elements("xpath", "./ancestor::*[contains(@class, 'ag-header')]"), "not a column header"
    browser.execute_script("arguments[0].scrollIntoView({block: 'center', inline: 'center'});", header)
    screenshot(browser, shots, "columns")


def run_page(sweep, ui: str, name: str, tab: str = "") -> str:
    experiment, runs = sweep[1], sweep[2]
    return f"{ui}/#/experiments/{experiment.experiment_id}/runs/{runs[name].info.run_id}{tab}?{CLASSIC}"


def test_a_runs_eval_charts_and_its_image_grids_at_the_evaluation_steps(sweep, ui, browser, shots):
    browser.get(run_page(sweep, ui, CHILDREN[0], "/model-metrics"))
    search = wait_for_input(browser, "Search metric charts")
    search.send_keys("eval/")  # the run logs many more charts (train/, summary/, ...); MLflow draws those in view
    for chart in ("reconstruction_error", "mean_distance", "on_plateau"):  # eval/* against samples (the step)
        wait_for(browser, chart)
    close_assistant(browser)
    screenshot(browser, shots, "charts")
    search.send_keys("\ue009a")  # Ctrl+A: replace the filter
    search.send_keys("reconstructions")
    wait_for(browser, "interpolations")
    wait_for(browser, "No image logged at this step")  # the slider starts at step 0, before any evaluation
    steps = [e for e in browser.find_elements("css selector", "input") if e.is_displayed()
             and e.get_attribute("value") == "0"]
    assert len(steps) == 2, "one step box per image grid (reconstructions, interpolations)"
    for box in steps:
        box.send_keys("\ue009a")  # Ctrl+A
        box.send_keys(str(EVAL_STEPS[-1]) + "\ue004")  # the last evaluation's step, Tab (applied on leaving)
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, WAIT).until(
        lambda d: "No image logged at this step" not in page_text(d)
        and sum(e.is_displayed() and e.get_attribute("naturalWidth") not in (None, "0")
                for e in d.find_elements("css selector", "img")) >= 2,
        f"no image grids at step {EVAL_STEPS[-1]}")
    for image in browser.find_elements("css selector", "img"):  # below the run's parameters, inside the card
        if image.is_displayed():
            browser.execute_script("arguments[0].scrollIntoView({block: 'end'});", image)
    screenshot(browser, shots, "images")


def wait_for_input(driver, placeholder: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT).until(
        lambda d: next((e for e in d.find_elements("css selector", f"input[placeholder='{placeholder}']")
                        if e.is_displayed()), False), f"no input {placeholder!r}")


def test_a_runs_models_and_latent_classifier(sweep, ui, browser, shots):
    experiment = sweep[1]
    browser.get(f"{ui}/#/experiments/{experiment.experiment_id}/models?{CLASSIC}")  # the experiment's Models tab
    for text in ("Model name", "Source run", "interpolator", "model", CHILDREN[0]):  # each run's two LoggedModels
        wait_for(browser, text)
    close_assistant(browser)
    screenshot(browser, shots, "models")
    browser.get(run_page(sweep, ui, CHILDREN[0], "/artifacts"))
    click(browser, wait_for(browser, "latent_classifier"))
    wait_for(browser, "latent_classifier.keras")


def test_the_sweeps_parent_holds_its_report_and_learning_curves(sweep, ui, browser, shots):
    parent = sweep[3]
    browser.get(run_page(sweep, ui, parent.info.run_name, "/artifacts"))
    browser.refresh()  # coming from another run's artifacts, MLflow 3.17 shows "No Artifacts Recorded" until a reload
    click(browser, wait_for(browser, "summary"))
    click(browser, wait_for(browser, "report.md"))
    wait_for(browser, "Mean Distance (x10^-3)", exact=False)  # the markdown, rendered
    close_assistant(browser)
    screenshot(browser, shots, "summary")
    click(browser, wait_for(browser, "learning_curves.png"))
    wait_for(browser, "summary/learning_curves.png")  # the preview's title
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, WAIT).until(
        lambda d: any(e.is_displayed() and int(e.get_attribute("naturalWidth") or 0) > 200
                      for e in d.find_elements("css selector", "img")), "learning_curves.png is not shown")
    screenshot(browser, shots, "learning-curves")
