//! A real headless Chromium driven over WebDriver (Debian's `chromium` + `chromium-driver`), for
//! the portal's tests. Elements are found the way a person (or a screen reader) finds them: a
//! field by its label's text, a button or link by its visible name. Every page a test waits for
//! is saved as a numbered screenshot in the test's output directory (named by its path), and a
//! test can add named ones, so a run shows every page it visited and a failed run where it was.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use tokio::process::{Child, Command};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// One browser session with its own chromedriver process (killed on drop).
pub struct Browser {
    client: Client,
    _driver: Child,
    output: PathBuf,
    shots: AtomicUsize,
}

/// Where a test writes what a person would want to look at afterwards (screenshots):
/// `target/test-output/<name>`, emptied first.
pub fn test_output_dir(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("test-output").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Whether this machine can run browser tests at all.
pub fn browser_installed() -> bool {
    Path::new(CHROMEDRIVER).exists() && Path::new(CHROMIUM).exists()
}

impl Browser {
    /// Starts chromedriver on a free port and opens a headless Chromium session; screenshots go
    /// to `output`.
    pub async fn start(output: &Path) -> Browser {
        assert!(
            browser_installed(),
            "{CHROMEDRIVER} and {CHROMIUM} are needed: apt-get install -y chromium chromium-driver"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--no-first-run", "--window-size=1280,900",
                ],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let mut last_error = None;
        for _ in 0..100 {
            match ClientBuilder::rustls().unwrap().capabilities(capabilities.clone()).connect(&url).await {
                Ok(client) => {
                    return Browser { client, _driver: driver, output: output.to_owned(), shots: AtomicUsize::new(0) };
                }
                Err(error) => last_error = Some(error),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not start a session: {last_error:?}");
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    /// Saves a screenshot as `NNN-name.png` and returns its path.
    pub async fn snap(&self, name: &str) -> PathBuf {
        let n = self.shots.fetch_add(1, Ordering::Relaxed) + 1;
        let path = self.output.join(format!("{n:03}-{name}.png"));
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Resizes the window (a phone is about 390 × 844).
    pub async fn resize(&self, width: u32, height: u32) {
        self.client.set_window_size(width, height).await.unwrap();
    }

    /// Whether the page is wider than the window (it would scroll sideways).
    pub async fn overflows_horizontally(&self) -> bool {
        let script = "return document.documentElement.scrollWidth > window.innerWidth";
        self.run(script, vec![]).await.as_bool().unwrap_or(true)
    }

    /// The page's visible text.
    pub async fn text(&self) -> String {
        self.client.find(Locator::Css("body")).await.unwrap().text().await.unwrap()
    }

    /// Waits (up to 10 s) until the page's text contains `needle`, saves a screenshot of the
    /// page, and returns its text.
    pub async fn wait_for_text(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let text = match self.client.find(Locator::Css("body")).await {
                Ok(body) => body.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if text.contains(needle) {
                self.snap(&page_name(&self.url().await)).await;
                return text;
            }
            if std::time::Instant::now() >= deadline {
                self.snap("failed").await;
                panic!("{needle:?} never appeared on {}:\n{text}", self.url().await);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs `script` in the page (its `arguments` are `args`) and returns what it returns.
    pub async fn run(&self, script: &str, args: Vec<serde_json::Value>) -> serde_json::Value {
        self.client.execute(script, args).await.unwrap_or_else(|e| panic!("script failed: {e}"))
    }

    pub async fn url(&self) -> String {
        self.client.current_url().await.unwrap().to_string()
    }

    /// The text of the element `css` selects (panics when there is none).
    pub async fn text_of(&self, css: &str) -> String {
        let element = match self.client.find(Locator::Css(css)).await {
            Ok(element) => element,
            Err(e) => panic!("nothing matches {css:?} on {}: {e}", self.url_for_message().await),
        };
        element.text().await.unwrap()
    }

    /// The form control whose `<label>` reads `label`.
    pub async fn field(&self, label: &str) -> Element {
        let xpath = format!("//label[normalize-space()={}]", xpath_literal(label));
        let label_element = match self.client.find(Locator::XPath(&xpath)).await {
            Ok(element) => element,
            Err(e) => panic!("no label {label:?} on {}: {e}", self.url_for_message().await),
        };
        let id = label_element.attr("for").await.unwrap().unwrap_or_else(|| panic!("label {label:?} has no for"));
        self.client.find(Locator::Id(&id)).await.unwrap()
    }

    /// Types `value` into the field labelled `label`, replacing what was there.
    pub async fn fill(&self, label: &str, value: &str) {
        let field = self.field(label).await;
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }

    /// Picks a file for the file input labelled `label`.
    pub async fn upload(&self, label: &str, file: &Path) {
        self.field(label).await.send_keys(file.to_str().unwrap()).await.unwrap();
    }

    /// Selects the option with visible text `option` in the dropdown labelled `label`.
    pub async fn select_option(&self, label: &str, option: &str) {
        self.field(label).await.select_by_label(option).await.unwrap();
    }

    /// Clicks the radio button or checkbox labelled `label`.
    pub async fn choose(&self, label: &str) {
        self.field(label).await.click().await.unwrap();
    }

    /// Sets the checkbox labelled `label` to `checked`.
    pub async fn set_checked(&self, label: &str, checked: bool) {
        let field = self.field(label).await;
        if field.is_selected().await.unwrap() != checked {
            field.click().await.unwrap();
        }
    }

    /// The buttons whose visible name is `name` (an empty list when there is none).
    pub async fn buttons(&self, name: &str) -> Vec<Element> {
        let xpath = format!("//button[normalize-space()={}]", xpath_literal(name));
        self.client.find_all(Locator::XPath(&xpath)).await.unwrap()
    }

    /// Clicks the (first) button named `name`.
    pub async fn click_button(&self, name: &str) {
        let Some(button) = self.buttons(name).await.into_iter().next() else {
            panic!("no button {name:?} on {}", self.url_for_message().await);
        };
        button.click().await.unwrap();
    }

    /// Clicks the button named `name` in the table row that mentions `row_text`.
    pub async fn click_in_row(&self, row_text: &str, name: &str) {
        let xpath = format!(
            "//tr[contains(normalize-space(), {})]//*[(self::button or self::a) and normalize-space()={}]",
            xpath_literal(row_text),
            xpath_literal(name)
        );
        self.client
            .find(Locator::XPath(&xpath))
            .await
            .unwrap_or_else(|e| panic!("no {name:?} in the row of {row_text:?}: {e}"))
            .click()
            .await
            .unwrap();
    }

    /// Follows the link whose text is `text`.
    pub async fn click_link(&self, text: &str) {
        self.client
            .find(Locator::LinkText(text))
            .await
            .unwrap_or_else(|e| panic!("no link {text:?}: {e}"))
            .click()
            .await
            .unwrap();
    }

    /// The links whose text is `text`.
    pub async fn links(&self, text: &str) -> Vec<Element> {
        self.client.find_all(Locator::LinkText(text)).await.unwrap()
    }

    /// The cookie `name` as the browser holds it, in `Set-Cookie` form with its attributes
    /// (`name=value; HttpOnly; SameSite=Strict; Path=/portal; Expires=…`).
    pub async fn cookie(&self, name: &str) -> Option<String> {
        self.client.get_named_cookie(name).await.ok().map(|cookie| cookie.to_string())
    }

    async fn url_for_message(&self) -> String {
        self.client.current_url().await.map(|u| u.to_string()).unwrap_or_default()
    }
}

/// A file name for the page at `url`: its path, `/` as `-`, other punctuation dropped.
fn page_name(url: &str) -> String {
    let path = url.split_once("://").map_or(url, |(_, rest)| rest.split_once('/').map_or("", |(_, path)| path));
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let name: String = path
        .chars()
        .map(|c| if c == '/' { '-' } else { c })
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    if name.is_empty() { "page".into() } else { name }
}

/// An XPath string literal for `text` (XPath 1 has no escapes: quotes are joined with concat).
fn xpath_literal(text: &str) -> String {
    if !text.contains('\'') {
        return format!("'{text}'");
    }
    let parts: Vec<String> = text.split('\'').map(|part| format!("'{part}'")).collect();
    format!("concat({})", parts.join(", \"'\", "))
}
