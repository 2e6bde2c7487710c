//! A small W3C WebDriver client for headless Chromium through
//! `chromedriver`: enough for a test to do what a person does on a page
//! (open it, read what it shows, type, click) and see what they would see.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{Process, Reply, free_address, http};

/// A browser session, ended (and its chromedriver stopped) on drop.
pub struct Browser {
    driver: String,
    session: String,
    _chromedriver: Process,
}

impl Browser {
    /// Starts `chromedriver` on a free port and a headless Chromium session
    /// through it. Debian's `chromium` and `chromium-driver` packages
    /// provide both (`.ci/run` installs them).
    pub async fn start() -> Self {
        let address = free_address();
        let port = address.rsplit(':').next().expect("a port").to_string();
        let chromedriver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver on the PATH (apt-get install chromium chromium-driver)");
        let driver = format!("http://{address}");
        let started = Instant::now();
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver never listened"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium(),
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000"],
            },
        }}});
        let reply = call(&driver, "POST", "/session", Some(capabilities)).await;
        let session = reply["sessionId"]
            .as_str()
            .expect("a session id")
            .to_string();
        Self {
            driver,
            session,
            _chromedriver: Process(chromedriver),
        }
    }

    async fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        call(&self.driver, method, &path, body).await
    }

    /// Opens `url` and waits for the page to load.
    pub async fn open(&self, url: &str) {
        self.command("POST", "/url", Some(json!({ "url": url })))
            .await;
    }

    /// Runs `script` (a function body) in the page and answers its result.
    pub async fn run(&self, script: &str) -> Value {
        let body = json!({ "script": script, "args": [] });
        self.command("POST", "/execute/sync", Some(body)).await
    }

    /// Waits (up to a minute) until `script` answers something `ok` says is
    /// what a person waits to see, and answers it.
    pub async fn until(&self, script: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let value = self.run(script).await;
            if ok(&value) {
                return value;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the page never showed it: {script} answers {value}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The element `css` selects (the first one).
    pub async fn find(&self, css: &str) -> String {
        let body = json!({ "using": "css selector", "value": css });
        let found = self.command("POST", "/element", Some(body)).await;
        let id = found.as_object().and_then(|o| o.values().next());
        id.and_then(Value::as_str).expect("an element").to_string()
    }

    /// Types `text` into the element `css` selects.
    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        let body = json!({ "text": text });
        self.command("POST", &format!("/element/{element}/value"), Some(body))
            .await;
    }

    /// Clicks the element `css` selects.
    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        let path = format!("/element/{element}/click");
        self.command("POST", &path, Some(json!({}))).await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let (driver, session) = (self.driver.clone(), self.session.clone());
        // Ends Chromium; chromedriver itself stops with its process handle.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(http(
                    &driver,
                    "DELETE",
                    &format!("/session/{session}"),
                    &[],
                    "",
                ));
            }
        })
        .join();
    }
}

/// The Chromium binary Debian installs.
fn chromium() -> &'static str {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists())
        .unwrap_or("/usr/bin/chromium")
}

/// One WebDriver command; its `value`, or a panic naming the error.
async fn call(driver: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let json = [("Content-Type", "application/json")];
    let reply: Reply = http(driver, method, path, &json, &body).await;
    let answer: Value = serde_json::from_str(&reply.body)
        .unwrap_or_else(|err| panic!("{method} {path}: {err}: {}", reply.body));
    assert_eq!(reply.status, 200, "{method} {path}: {answer}");
    answer["value"].clone()
}
