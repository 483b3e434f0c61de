//! README.md's shell blocks, run word by word against the built binaries, so the README cannot
//! drift from what works.
//!
//! Every ```` ```sh ```` block of README.md is covered (the test fails when one is added that it
//! does not know): "The two commands", the dev walkthrough ("In another terminal"), "Running a
//! cluster" and "Running proxies" (run in the same shell session as the cluster, as a reader
//! would). Each block is run by `bash -euo pipefail` from the repository root, exactly as written
//! except for this substitution table — each entry must match the README, so changing a command
//! there breaks this test until the command works again:
//!
//! | README text | replaced by | why |
//! |---|---|---|
//! | `target/debug/` | the directory holding the built binaries | `SWITCHYARD_BIN_DIR`/`CARGO_TARGET_DIR` |
//! | `cargo run --bin switchyard -- dev` | `<bin>/switchyard dev` + ephemeral `--*-addr` flags | tests never build, nor use fixed ports |
//! | `bash scripts/test.sh` | `bash -n scripts/test.sh` (syntax check) | it is the runner of this very test |
//! | `localhost:8080` | `localhost:<ephemeral proxy port>` | dev's proxy port |
//! | (dev walkthrough environment) | `SWITCHYARD_ENDPOINTS=127.0.0.1:<ephemeral>` | dev's API default is 127.0.0.1:7400 |
//! | `127.0.0.1:7100` … `127.0.0.1:7302` (9 addresses) | `127.0.0.1:<ephemeral>` each | fixed ports |
//! | `/tmp/sy` | `<temp dir>/sy` | fresh data directories |
//! | `0.0.0.0:80`, `127.0.0.1:9180` | `127.0.0.1:<ephemeral>` | privileged / fixed ports |
//! | `/var/lib/switchyard-proxy` | `<temp dir>/proxy-cache` | writable location |
//!
//! Background processes (`switchyard dev`, the three servers, the proxy) run in their own process
//! group, stopped by the test at the end (SIGTERM to the group, then SIGKILL).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use switchyard_e2e::{bin_dir, free_addr, free_port, http_get, wait_until};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A fenced ```` ```sh ```` block of README.md and the `##` section it is in.
#[derive(Debug, Clone)]
struct Block {
    section: String,
    text: String,
}

fn sh_blocks() -> Vec<Block> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let mut out = Vec::new();
    let mut section = String::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        if let Some(text) = current.as_mut() {
            if line.trim_start().starts_with("```") {
                out.push(Block {
                    section: section.clone(),
                    text: std::mem::take(text),
                });
                current = None;
            } else {
                text.push_str(line);
                text.push('\n');
            }
            continue;
        }
        if let Some(h) = line.strip_prefix("## ") {
            section = h.trim().to_string();
        } else if line.trim() == "```sh" {
            current = Some(String::new());
        }
    }
    out
}

/// Applies the substitutions, each of which must match `text` at least once.
fn substitute(block: &str, text: &str, table: &[(&str, String)]) -> String {
    let mut out = text.to_string();
    for (from, to) in table {
        assert!(
            out.contains(from),
            "README block {block:?} no longer contains {from:?} (substitution table of \
             tests/tests/readme.rs); the block is now:\n{text}"
        );
        out = out.replace(from, to);
    }
    out
}

/// `bash -euo pipefail -c SCRIPT` from the repository root, in its own process group, with
/// output to files in `dir`. SWITCHYARD_* variables of the test's environment are removed; `env`
/// is added.
struct Shell {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Shell {
    fn spawn(dir: &Path, name: &str, script: &str, env: &[(&str, String)]) -> Shell {
        let stdout = dir.join(format!("{name}.out"));
        let stderr = dir.join(format!("{name}.err"));
        let mut cmd = Command::new("bash");
        cmd.args(["-euo", "pipefail", "-c", script])
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .process_group(0);
        for (k, _) in std::env::vars() {
            if k.starts_with("SWITCHYARD_") {
                cmd.env_remove(k);
            }
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        Shell {
            child: cmd.spawn().expect("start bash"),
            stdout,
            stderr,
        }
    }

    fn output(&self) -> (String, String) {
        (
            std::fs::read_to_string(&self.stdout).unwrap_or_default(),
            std::fs::read_to_string(&self.stderr).unwrap_or_default(),
        )
    }

    fn describe(&self) -> String {
        let (o, e) = self.output();
        format!("--- stdout ---\n{o}\n--- stderr ---\n{e}")
    }

    /// Waits for the script to exit; panics when it fails or outlives `timeout`.
    fn finish(&mut self, timeout: Duration, what: &str) -> String {
        let status = wait_until(timeout, what, || self.child.try_wait().ok().flatten());
        assert!(status.success(), "{what}: {status}\n{}", self.describe());
        self.output().0
    }

    /// Fails with the output when the script has exited (a command failed).
    fn assert_running(&mut self, what: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{what}: the script exited with {status}\n{}",
                self.describe()
            );
        }
    }

    /// Stops the whole process group (the script and everything it started in the background).
    fn stop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-TERM", "--", &group])
            .stderr(Stdio::null())
            .status();
        let gone = || {
            !Command::new("kill")
                .args(["-0", "--", &group])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while !gone() && std::time::Instant::now() < deadline {
            let _ = self.child.try_wait();
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One command per line, each preceded by a marker line on stdout (`::: N`), so the output of
/// command N can be told apart. Continuation lines (`\`) are joined first.
fn marked(script: &str) -> (String, Vec<String>) {
    let mut commands = Vec::new();
    let mut pending = String::new();
    for line in script.lines() {
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            continue;
        }
        pending.push_str(line);
        let cmd = std::mem::take(&mut pending);
        if !cmd.trim().is_empty() && !cmd.trim_start().starts_with('#') {
            commands.push(cmd);
        }
    }
    let mut out = String::new();
    for (i, c) in commands.iter().enumerate() {
        out.push_str(&format!("echo '::: {i}'\n{c}\n"));
    }
    (out, commands)
}

/// The output of each marked command.
fn outputs(stdout: &str) -> BTreeMap<usize, String> {
    let mut out = BTreeMap::new();
    let mut current = None;
    for line in stdout.lines() {
        if let Some(n) = line.strip_prefix("::: ").and_then(|n| n.parse().ok()) {
            current = Some(n);
            out.insert(n, String::new());
        } else if let Some(n) = current {
            let s: &mut String = out.get_mut(&n).unwrap();
            s.push_str(line);
            s.push('\n');
        }
    }
    out
}

/// `GET path` on `addr` with `Host: localhost` (the sample's routers match that host); the status.
fn get_localhost(addr: &str, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

fn port(addr: &str) -> u16 {
    addr.rsplit_once(':').unwrap().1.parse().unwrap()
}

#[test]
fn readme_shell_blocks_run_word_by_word() {
    let blocks = sh_blocks();
    let sections: Vec<&str> = blocks.iter().map(|b| b.section.as_str()).collect();
    assert_eq!(
        sections,
        [
            "The two commands",
            "The two commands",
            "Running a cluster",
            "Running proxies"
        ],
        "README's sh blocks changed: cover the new one in tests/tests/readme.rs"
    );
    let dir = tempfile::tempdir().unwrap();
    let bins = format!("{}/", bin_dir().display());

    // --- The two commands: `switchyard dev` (and the test command, syntax-checked) -------------
    let (api, peer, http, proxy, padmin, backend) = (
        free_addr(),
        free_addr(),
        free_addr(),
        free_addr(),
        free_addr(),
        free_addr(),
    );
    let two = &blocks[0];
    let two_text = substitute(
        "the two commands",
        &two.text,
        &[
            (
                "cargo run --bin switchyard -- dev",
                format!(
                    "{bins}switchyard dev --api-addr {api} --peer-addr {peer} --http-addr {http} \
                     --proxy-addr {proxy} --proxy-admin-addr {padmin} --backend-addr {backend}"
                ),
            ),
            ("bash scripts/test.sh", "bash -n scripts/test.sh".into()),
        ],
    );
    let lines: Vec<&str> = two_text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 2, "{two_text}");
    let mut check = Shell::spawn(dir.path(), "test-sh", lines[1], &[]);
    check.finish(Duration::from_secs(10), "bash -n scripts/test.sh");
    let mut dev = Shell::spawn(dir.path(), "dev", lines[0], &[]);
    wait_until(Duration::from_secs(60), "dev serving the sample", || {
        dev.assert_running("switchyard dev");
        if get_localhost(&proxy, "/hello") == Some(200) {
            Ok(())
        } else {
            Err(dev.describe())
        }
    });

    // --- The dev walkthrough, "in another terminal" ---------------------------------------------
    let walk = substitute(
        "dev walkthrough",
        &blocks[1].text,
        &[
            ("localhost:8080", format!("localhost:{}", port(&proxy))),
            ("target/debug/", bins.clone()),
        ],
    );
    let (script, commands) = marked(&walk);
    let mut shell = Shell::spawn(
        dir.path(),
        "walkthrough",
        &script,
        &[("SWITCHYARD_ENDPOINTS", api.clone())],
    );
    let out = outputs(&shell.finish(Duration::from_secs(60), "the dev walkthrough"));
    let by_command = |needle: &str| -> &String {
        let i = commands
            .iter()
            .position(|c| c.contains(needle))
            .unwrap_or_else(|| panic!("no command {needle:?} in {commands:?}"));
        &out[&i]
    };
    let hello = by_command("/hello");
    assert!(hello.starts_with("HTTP/1.1 200"), "{hello}");
    assert!(
        hello
            .to_ascii_lowercase()
            .contains("x-served-by: switchyard"),
        "{hello}"
    );
    let users = by_command("/api/users");
    assert!(users.starts_with("HTTP/1.1 200"), "{users}");
    assert!(
        users.contains("\"path\": \"/users\""),
        "stripPrefix: {users}"
    );
    assert!(by_command("get proxies").contains("dev-proxy"), "{out:?}");
    assert!(by_command("explain").contains("demo-api"), "{out:?}");
    assert!(by_command("get config").contains("demo-headers"), "{out:?}");
    dev.stop();

    // --- Running a cluster, then a proxy, in one shell session ----------------------------------
    let mut table: Vec<(&str, String)> = vec![("target/debug/", bins.clone())];
    let fixed = [
        "127.0.0.1:7100",
        "127.0.0.1:7101",
        "127.0.0.1:7102",
        "127.0.0.1:7200",
        "127.0.0.1:7201",
        "127.0.0.1:7202",
        "127.0.0.1:7300",
        "127.0.0.1:7301",
        "127.0.0.1:7302",
    ];
    let ephemeral: BTreeMap<&str, String> = fixed.iter().map(|&a| (a, free_addr())).collect();
    for a in fixed {
        table.push((a, ephemeral[a].clone()));
    }
    table.push(("/tmp/sy", format!("{}/sy", dir.path().display())));
    let cluster = substitute("running a cluster", &blocks[2].text, &table);
    let entry = format!("127.0.0.1:{}", free_port());
    let proxy_admin = free_addr();
    let proxies = substitute(
        "running proxies",
        &blocks[3].text,
        &[
            ("target/debug/", bins.clone()),
            ("127.0.0.1:7100", ephemeral["127.0.0.1:7100"].clone()),
            ("127.0.0.1:7200", ephemeral["127.0.0.1:7200"].clone()),
            ("/tmp/sy", format!("{}/sy", dir.path().display())),
            ("0.0.0.0:80", entry.clone()),
            ("127.0.0.1:9180", proxy_admin.clone()),
            (
                "/var/lib/switchyard-proxy",
                format!("{}/proxy-cache", dir.path().display()),
            ),
        ],
    );
    let (script, commands) = marked(&format!("{cluster}{proxies}"));
    let last = commands.len() - 1;
    assert!(commands[last].contains("switchyard-proxy"), "{commands:?}");
    let mut session = Shell::spawn(dir.path(), "cluster", &script, &[]);
    // The proxy runs in the foreground: the session is done once it serves the applied config.
    wait_until(
        Duration::from_secs(90),
        "the README's proxy serving the applied sample",
        || {
            session.assert_running("the cluster walkthrough");
            let ready = http_get(&proxy_admin, "/readyz").is_ok_and(|r| r.status == 200);
            // Router "demo" matches; its backend (dev's demo backend) is not running here.
            if ready && get_localhost(&entry, "/hello") == Some(502) {
                Ok(())
            } else {
                Err(session.describe())
            }
        },
    );
    let out = outputs(&session.output().0);
    let status_i = commands
        .iter()
        .position(|c| c.contains("cluster status"))
        .unwrap();
    let status = &out[&status_i];
    assert_eq!(
        status.lines().filter(|l| l.contains("voter")).count(),
        3,
        "cluster status:\n{status}"
    );
    let apply_i = commands
        .iter()
        .position(|c| c.contains("apply -f deploy/examples/sample.yaml"))
        .unwrap();
    assert!(
        out[&apply_i].contains("applied: config version"),
        "{}",
        out[&apply_i]
    );
    session.stop();
}

/// `export SWITCHYARD_INSECURE=1` as README and `switchyard dev` print it, and the other usual
/// spellings of a boolean, work for both binaries.
#[test]
fn boolean_environment_variables_accept_the_usual_spellings() {
    let cluster = switchyard_e2e::Cluster::start_with(1, &[switchyard_e2e::INSECURE]);
    let api = cluster.nodes[0].addrs.api.clone();
    let run = |value: &str| {
        let out = Command::new(switchyard_e2e::switchyard_bin())
            .args(["--endpoints", &api, "get", "routers"])
            .env_remove("SWITCHYARD_TOKEN")
            .env_remove("SWITCHYARD_CA_CERT")
            .env_remove("SWITCHYARD_ENDPOINTS")
            .env("SWITCHYARD_INSECURE", value)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    for on in ["1", "true", "yes", "on", "TRUE", "Yes"] {
        let (ok, err) = run(on);
        assert!(ok, "SWITCHYARD_INSECURE={on}: {err}");
    }
    for off in ["0", "false", "no", "off"] {
        // Off: the endpoint is https://, which the plaintext node does not speak.
        let (ok, err) = run(off);
        assert!(!ok, "SWITCHYARD_INSECURE={off} must mean secure: {err}");
        assert!(!err.contains("invalid value"), "{off}: {err}");
    }
    let (ok, err) = run("maybe");
    assert!(!ok && err.contains("invalid value 'maybe'"), "{err}");

    // The proxy: on, it starts in plaintext; off, it asks for the CA and a join token.
    let proxy = |value: &str, admin: &str| {
        Command::new(switchyard_e2e::binary("switchyard-proxy"))
            .args([
                "--control",
                &api,
                "--entrypoint",
                &format!("web={}", free_addr()),
                "--admin-addr",
                admin,
            ])
            .env_remove("SWITCHYARD_CA_CERT")
            .env_remove("SWITCHYARD_JOIN_TOKEN")
            .env("SWITCHYARD_INSECURE", value)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let admin = free_addr();
    let mut p = proxy("yes", &admin);
    wait_until(Duration::from_secs(30), "the proxy's /healthz", || {
        assert!(p.try_wait().unwrap().is_none(), "the proxy exited");
        http_get(&admin, "/healthz").is_ok_and(|r| r.status == 200)
    });
    let _ = p.kill();
    let _ = p.wait();
    let off = proxy("off", &free_addr()).wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&off.stderr);
    assert!(
        !off.status.success() && err.contains("--control needs --ca-cert"),
        "{err}"
    );
}
