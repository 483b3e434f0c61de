//! A headless Debian `chromium` driven over the Chrome DevTools Protocol (a WebSocket speaking
//! JSON), for the dashboard suite: open a page, evaluate JavaScript, collect console errors and
//! uncaught exceptions, take screenshots.
//!
//! Hand-written on `tokio-tungstenite` (already a dependency of this crate) rather than
//! `chromiumoxide`/`headless_chrome`: the few commands needed here (`Target.*`,
//! `Page.navigate`, `Runtime.evaluate`, `Page.captureScreenshot`) fit in this file, while those
//! crates compile the whole generated protocol (minutes on the 2-core CI machine) and
//! `headless_chrome` may download a browser build.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

/// How long one protocol command may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

/// The `chromium` binary (`CHROMIUM` overrides).
pub fn chromium_bin() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".to_string())
}

/// One headless browser with one page (tab).
pub struct Browser {
    rt: tokio::runtime::Runtime,
    child: Child,
    _profile: tempfile::TempDir,
    out: mpsc::UnboundedSender<String>,
    pending: Pending,
    next_id: AtomicU64,
    session: String,
    problems: Arc<Mutex<Vec<String>>>,
}

impl Browser {
    /// Starts `chromium --headless` with a fresh profile and opens a blank page.
    pub fn launch() -> Result<Browser> {
        let profile = tempfile::Builder::new()
            .prefix("switchyard-e2e-chromium-")
            .tempdir()?;
        let mut child = Command::new(chromium_bin())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--window-size=1366,900",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {} (apt-get install chromium)", chromium_bin()))?;
        // Chromium prints `DevTools listening on ws://…` on stderr once it listens.
        let stderr = child.stderr.take().context("chromium stderr")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                if !sent {
                    if let Some(i) = line.find("ws://") {
                        let _ = tx.send(line[i..].trim().to_string());
                        sent = true;
                    }
                }
            }
        });
        let ws = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                bail!("chromium did not print its DevTools address within 60 s");
            }
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let pending: Pending = Arc::default();
        let problems: Arc<Mutex<Vec<String>>> = Arc::default();
        let (out, mut out_rx) = mpsc::unbounded_channel::<String>();
        let (p2, pr2) = (pending.clone(), problems.clone());
        rt.block_on(async {
            let hostport = ws
                .trim_start_matches("ws://")
                .split('/')
                .next()
                .unwrap_or("")
                .to_string();
            let tcp = tokio::net::TcpStream::connect(&hostport).await?;
            let (stream, _) = tokio_tungstenite::client_async(ws.as_str(), tcp)
                .await
                .map_err(|e| anyhow!("DevTools WebSocket {ws}: {e}"))?;
            let (mut sink, mut source) = stream.split();
            tokio::spawn(async move {
                while let Some(text) = out_rx.recv().await {
                    if sink.send(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                }
            });
            tokio::spawn(async move {
                while let Some(Ok(msg)) = source.next().await {
                    let Message::Text(text) = msg else { continue };
                    let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else {
                        continue;
                    };
                    if let Some(id) = v.get("id").and_then(Value::as_u64) {
                        let waiter = p2.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                        if let Some(w) = waiter {
                            let _ = w.send(v);
                        }
                    } else if let Some(p) = problem(&v) {
                        pr2.lock().unwrap_or_else(|p| p.into_inner()).push(p);
                    }
                }
            });
            Ok::<(), anyhow::Error>(())
        })?;
        let mut b = Browser {
            rt,
            child,
            _profile: profile,
            out,
            pending,
            next_id: AtomicU64::new(1),
            session: String::new(),
            problems,
        };
        let target = b.call("Target.createTarget", json!({"url": "about:blank"}))?;
        let target_id = target["targetId"].as_str().context("targetId")?.to_string();
        let attached = b.call(
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
        )?;
        b.session = attached["sessionId"]
            .as_str()
            .context("sessionId")?
            .to_string();
        for domain in ["Runtime.enable", "Log.enable", "Page.enable"] {
            b.call(domain, json!({}))?;
        }
        Ok(b)
    }

    /// Sends one protocol command (to the page once attached) and waits for its result.
    pub fn call(&self, method: &str, params: Value) -> Result<Value> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut msg = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            msg["sessionId"] = Value::String(self.session.clone());
        }
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        self.out
            .send(msg.to_string())
            .map_err(|_| anyhow!("DevTools connection closed"))?;
        let reply = self
            .rt
            .block_on(async { tokio::time::timeout(CALL_TIMEOUT, rx).await })
            .map_err(|_| anyhow!("{method}: no answer within {CALL_TIMEOUT:?}"))?
            .map_err(|_| anyhow!("{method}: DevTools connection closed"))?;
        if let Some(e) = reply.get("error") {
            bail!("{method}: {e}");
        }
        Ok(reply["result"].clone())
    }

    /// Opens `url` in the page.
    pub fn navigate(&self, url: &str) -> Result<()> {
        let r = self.call("Page.navigate", json!({"url": url}))?;
        if let Some(e) = r.get("errorText").and_then(Value::as_str) {
            bail!("navigating to {url}: {e}");
        }
        Ok(())
    }

    /// Evaluates `expr` in the page (promises awaited) and returns its JSON value.
    pub fn eval(&self, expr: &str) -> Result<Value> {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
        )?;
        if let Some(ex) = r.get("exceptionDetails") {
            bail!("{expr}: {ex}");
        }
        Ok(r["result"]["value"].clone())
    }

    /// Saves a PNG screenshot of the page to `path`.
    pub fn screenshot(&self, path: &Path) -> Result<()> {
        use base64::Engine;
        let r = self.call("Page.captureScreenshot", json!({"format": "png"}))?;
        let data = r["data"].as_str().context("screenshot data")?;
        let png = base64::engine::general_purpose::STANDARD.decode(data)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png)?;
        Ok(())
    }

    /// Console errors, failed resource loads and uncaught exceptions seen so far.
    pub fn problems(&self) -> Vec<String> {
        self.problems
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A console error (`console.error`, `console.assert`), an uncaught exception, or a browser log
/// entry of level error (e.g. a failed resource load).
fn problem(v: &Value) -> Option<String> {
    let p = &v["params"];
    match v["method"].as_str()? {
        "Runtime.consoleAPICalled" if matches!(p["type"].as_str(), Some("error" | "assert")) => {
            Some(format!("console.{}: {}", p["type"], p["args"]))
        }
        "Runtime.exceptionThrown" => Some(format!("uncaught: {}", p["exceptionDetails"])),
        "Log.entryAdded" if p["entry"]["level"] == "error" => Some(format!(
            "log: {} ({})",
            p["entry"]["text"],
            p["entry"]["url"].as_str().unwrap_or("")
        )),
        _ => None,
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Chromium's helpers are in its process group.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
