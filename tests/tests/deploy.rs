//! Must-show 7 of issue 11: the deploy files use exactly the flags the binaries accept. Every
//! `switchyard`/`switchyard-proxy` invocation in deploy/docker/compose.yaml, the compose
//! bootstrap script, the rendered Kubernetes overlays (`kubectl kustomize`), the systemd units
//! (with their environment files substituted as systemd does) and deploy/README.md's shell blocks
//! is checked flag by flag against the real binaries' `--help`, subcommand by subcommand.
//! (`scripts/check-deploy.sh` runs the offline validators: compose, Kubernetes schemas,
//! `systemd-analyze verify`.)

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use switchyard_e2e::bin_dir;
use switchyard_e2e::deploy_files::{
    env_file, invocations_in_compose, invocations_in_manifests, invocations_in_shell,
    invocations_in_unit, markdown_sh_blocks, HelpSpecs, Invocation,
};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn kustomize(overlay: &str) -> String {
    let out = Command::new("kubectl")
        .args(["kustomize"])
        .arg(repo().join(overlay))
        .output()
        .unwrap_or_else(|e| {
            panic!("kubectl kustomize {overlay}: {e} (scripts/test.sh installs kubectl)")
        });
    assert!(
        out.status.success(),
        "kubectl kustomize {overlay}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Every invocation written in the deploy files, by file.
fn all_invocations() -> Vec<(String, Vec<Invocation>)> {
    let mut files = Vec::new();
    let f = "deploy/docker/compose.yaml";
    files.push((f.into(), invocations_in_compose(&read(f), f).unwrap()));
    let f = "deploy/docker/bootstrap.sh";
    files.push((f.into(), invocations_in_shell(&read(f), f).unwrap()));
    for overlay in ["one-region", "three-regions"] {
        let f = format!("deploy/kubernetes/overlays/{overlay}");
        let inv = invocations_in_manifests(&kustomize(&f), &f).unwrap();
        files.push((f, inv));
    }
    for (unit, env) in [
        ("switchyard.service", "switchyard.env"),
        ("switchyard-proxy.service", "switchyard-proxy.env"),
    ] {
        let f = format!("deploy/systemd/{unit}");
        let env = env_file(&read(&format!("deploy/systemd/{env}")));
        let inv = invocations_in_unit(&read(&f), &env, &f).unwrap();
        files.push((f, inv));
    }
    let f = "deploy/README.md";
    let mut inv = Vec::new();
    for (i, block) in markdown_sh_blocks(&read(f)).iter().enumerate() {
        inv.extend(invocations_in_shell(block, &format!("{f} block {}", i + 1)).unwrap());
    }
    files.push((f.into(), inv));
    files
}

#[test]
fn every_flag_in_the_deploy_files_is_one_the_binaries_accept() {
    let mut help = HelpSpecs::new(&bin_dir());
    let mut errors = Vec::new();
    let mut reached: Vec<(String, String)> = Vec::new();
    for (file, invs) in all_invocations() {
        for inv in &invs {
            match help.check(inv) {
                Ok(path) => reached.push((file.clone(), format!("{} {}", inv.bin, path.join(" ")))),
                Err(e) => errors.push(e.to_string()),
            }
        }
    }
    assert!(
        errors.is_empty(),
        "flags the binaries refuse:\n{}",
        errors.join("\n")
    );
    let count = |file: &str, what: &str| {
        reached
            .iter()
            .filter(|(f, w)| f == file && w.trim() == what)
            .count()
    };
    // The extraction found what the files run (so this test fails if it stops finding them).
    assert_eq!(
        count("deploy/docker/compose.yaml", "switchyard server"),
        3,
        "{reached:?}"
    );
    assert_eq!(
        count("deploy/docker/compose.yaml", "switchyard-proxy"),
        2,
        "{reached:?}"
    );
    assert_eq!(
        count("deploy/docker/bootstrap.sh", "switchyard token create"),
        1
    );
    assert_eq!(count("deploy/docker/bootstrap.sh", "switchyard apply"), 1);
    for overlay in ["one-region", "three-regions"] {
        let f = format!("deploy/kubernetes/overlays/{overlay}");
        assert_eq!(count(&f, "switchyard server"), 1, "{reached:?}");
        assert_eq!(count(&f, "switchyard-proxy"), 1, "{reached:?}");
    }
    assert_eq!(
        count("deploy/systemd/switchyard.service", "switchyard server"),
        1
    );
    assert_eq!(
        count(
            "deploy/systemd/switchyard-proxy.service",
            "switchyard-proxy"
        ),
        1
    );
    assert!(
        count("deploy/README.md", "switchyard token create") >= 2,
        "{reached:?}"
    );
    assert!(
        count("deploy/README.md", "switchyard get") >= 1,
        "{reached:?}"
    );
}

#[test]
fn a_flag_the_binaries_do_not_accept_is_reported() {
    let mut help = HelpSpecs::new(&bin_dir());
    let bad = [
        // A server flag given to the proxy, a misspelt flag, a subcommand's flag before it, an
        // unknown subcommand, a value given to a switch.
        ("switchyard-proxy", &["--node-id", "1"][..]),
        (
            "switchyard",
            &["server", "--node-id", "1", "--data-dri", "/d"][..],
        ),
        ("switchyard", &["--role", "proxy", "token", "create"][..]),
        ("switchyard", &["tokens", "create"][..]),
        (
            "switchyard-proxy",
            &["--insecure=yes", "--entrypoint", "w=:1"][..],
        ),
    ];
    for (bin, args) in bad {
        let inv = Invocation {
            origin: "negative control".into(),
            bin: bin.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
        };
        assert!(help.check(&inv).is_err(), "{bin} {args:?} accepted");
    }
    let good = Invocation {
        origin: "positive control".into(),
        bin: "switchyard".into(),
        args: [
            "--endpoints",
            "a:1",
            "token",
            "create",
            "--role",
            "proxy",
            "-o",
            "json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
    };
    assert_eq!(help.check(&good).unwrap(), vec!["token", "create"]);
}

/// A process of the compose stack run on loopback; killed when dropped.
struct Proc {
    name: String,
    child: std::process::Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &str, cmd: &mut Command, dir: &Path) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let f = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdin(std::process::Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Proc {
            name: name.into(),
            child,
            log,
        }
    }

    fn log(&self) -> String {
        let t = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = t.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("----- {} (last lines) -----\n{}", self.name, self.log());
        }
    }
}

/// A compose service's argv (`entrypoint` + `command`, `$$` unescaped) with every rewrite
/// applied to every word, and the service's `environment`.
fn service_argv(
    compose: &serde_json::Value,
    svc: &str,
    rewrites: &[(String, String)],
) -> (Vec<String>, Vec<(String, String)>) {
    let s = &compose["services"][svc];
    assert!(s.is_object(), "compose service {svc} missing");
    let words = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    let rw = |w: &str| {
        let mut w = w.replace("$$", "$");
        for (from, to) in rewrites {
            w = w.replace(from.as_str(), to);
        }
        w
    };
    let mut argv = words(&s["entrypoint"]);
    argv.extend(words(&s["command"]));
    let env = s["environment"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), rw(v.as_str().unwrap())))
                .collect()
        })
        .unwrap_or_default();
    (argv.iter().map(|w| rw(w)).collect(), env)
}

/// deploy/docker/compose.yaml run as plain processes on loopback (no container engine here):
/// the three control nodes, the `bootstrap` service's script, the two proxies and the `cli`
/// service, each exactly as the compose file writes its command, with only host names, listen
/// addresses and volume paths rewritten. Proves the secure bootstrap (CA and admin token from the
/// nodes' data, join token created, demo config applied) and that the proxies join with the
/// shared files and serve their clusters' routers.
#[test]
fn the_compose_stack_runs_as_processes_on_loopback() {
    use std::time::Duration;
    use switchyard_e2e::backends::HttpBackend;
    use switchyard_e2e::client::get;
    use switchyard_e2e::{free_addr, wait_until};

    let compose: serde_json::Value =
        serde_norway::from_str(&read("deploy/docker/compose.yaml")).unwrap();
    let dockerfile = read("deploy/docker/Dockerfile");
    assert!(
        dockerfile.contains("COPY deploy/docker/bootstrap.sh /usr/local/bin/switchyard-bootstrap")
            && dockerfile.contains("COPY deploy/docker/demo.yaml /etc/switchyard/demo.yaml"),
        "the image must carry the bootstrap script and demo config where compose expects them"
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let bins = bin_dir();
    let path_env = format!(
        "{}:{}",
        bins.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let backend = HttpBackend::start("demo");

    // Loopback addresses for the compose network's names and ports.
    let nodes: Vec<(String, String, String)> = (0..3)
        .map(|_| (free_addr(), free_addr(), free_addr()))
        .collect();
    let mut names: Vec<(String, String)> = Vec::new();
    for (i, (api, peer, _)) in nodes.iter().enumerate() {
        names.push((format!("node{}:7400", i + 1), api.clone()));
        names.push((format!("node{}:7401", i + 1), peer.clone()));
    }
    let bootstrap_dir = dir.join("bootstrap");
    let nodes_dir = dir.join("nodes");
    std::fs::create_dir_all(&bootstrap_dir).unwrap();
    let security_env = [
        "SWITCHYARD_TOKEN",
        "SWITCHYARD_CA_CERT",
        "SWITCHYARD_ENDPOINTS",
        "SWITCHYARD_INSECURE",
    ];

    let mut procs = Vec::new();
    for (i, (api, peer, http)) in nodes.iter().enumerate() {
        let n = i + 1;
        let mut rw = names.clone();
        rw.extend([
            ("0.0.0.0:7400".to_string(), api.clone()),
            ("0.0.0.0:7401".to_string(), peer.clone()),
            ("0.0.0.0:7402".to_string(), http.clone()),
            (
                "/var/lib/switchyard".to_string(),
                nodes_dir.join(n.to_string()).display().to_string(),
            ),
        ]);
        let (argv, _) = service_argv(&compose, &format!("node{n}"), &rw);
        assert_eq!(argv[..2], ["switchyard", "server"], "node{n}: {argv:?}");
        let mut cmd = Command::new(bins.join(&argv[0]));
        cmd.args(&argv[1..]);
        for v in security_env {
            cmd.env_remove(v);
        }
        procs.push(Proc::spawn(&format!("node{n}"), &mut cmd, dir));
    }

    // The bootstrap service: its script, with the volumes moved to the temp dir.
    let (argv, env) = service_argv(&compose, "bootstrap", &names);
    assert_eq!(argv, ["switchyard-bootstrap"]);
    let demo = read("deploy/docker/demo.yaml").replace("http://backend:80", &backend.url());
    assert!(
        demo.contains(&backend.url()),
        "demo.yaml routes to http://backend:80"
    );
    std::fs::write(dir.join("demo.yaml"), demo).unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg(repo().join("deploy/docker/bootstrap.sh"))
        .env("PATH", &path_env)
        .env("BOOTSTRAP_NODES_DIR", &nodes_dir)
        .env("BOOTSTRAP_DIR", &bootstrap_dir)
        .env("BOOTSTRAP_DEMO_CONFIG", dir.join("demo.yaml"))
        .env("BOOTSTRAP_TIMEOUT_SECS", "120");
    for v in security_env {
        cmd.env_remove(v);
    }
    cmd.envs(env);
    let mut boot = Proc::spawn("bootstrap", &mut cmd, dir);
    let status = wait_until(
        Duration::from_secs(150),
        "the bootstrap script to finish",
        || match boot.child.try_wait() {
            Ok(Some(s)) => Ok(s),
            Ok(None) => Err("running".to_string()),
            Err(e) => panic!("bootstrap: {e}"),
        },
    );
    assert!(status.success(), "bootstrap failed:\n{}", boot.log());
    for f in ["ca.pem", "admin.token", "join.token"] {
        let t = std::fs::read_to_string(bootstrap_dir.join(f)).unwrap();
        assert!(!t.trim().is_empty(), "bootstrap/{f} empty");
    }

    // The two proxies, as compose starts them once bootstrap succeeded.
    let mut proxies = Vec::new();
    for svc in ["proxy-eu", "proxy-us"] {
        let (web, admin) = (free_addr(), free_addr());
        let mut rw = names.clone();
        rw.extend([
            ("0.0.0.0:8000".to_string(), web.clone()),
            ("0.0.0.0:9180".to_string(), admin.clone()),
            (
                "/var/lib/switchyard-proxy".to_string(),
                dir.join(format!("cache-{svc}")).display().to_string(),
            ),
            (
                "/bootstrap/".to_string(),
                format!("{}/", bootstrap_dir.display()),
            ),
        ]);
        let (argv, _) = service_argv(&compose, svc, &rw);
        assert_eq!(argv[0], "switchyard-proxy");
        let mut cmd = Command::new(bins.join(&argv[0]));
        cmd.args(&argv[1..]);
        for v in security_env
            .iter()
            .chain(&["SWITCHYARD_JOIN_TOKEN", "SWITCHYARD_CLUSTER"])
        {
            cmd.env_remove(v);
        }
        procs.push(Proc::spawn(svc, &mut cmd, dir));
        proxies.push((svc, web));
    }
    let (eu_web, us_web) = (&proxies[0].1, &proxies[1].1);
    for (svc, web) in &proxies {
        wait_until(
            Duration::from_secs(60),
            &format!("{svc} serving the demo"),
            || match get(web, "localhost", "/") {
                Ok(r) if r.status == 200 => Ok(r),
                Ok(r) => Err(format!("status {}", r.status)),
                Err(e) => Err(e),
            },
        );
    }
    let r = get(eu_web, "localhost", "/").unwrap();
    assert_eq!(r.header("x-served-by").as_deref(), Some("switchyard"));
    assert_eq!(r.backend().as_deref(), Some("demo"));
    // demo-eu is scoped to cluster edge-eu: proxy-us answers /eu with the unscoped router.
    let r = get(eu_web, "localhost", "/eu").unwrap();
    assert_eq!(
        (r.status, r.header("x-cluster").as_deref()),
        (200, Some("edge-eu"))
    );
    let r = get(us_web, "localhost", "/eu").unwrap();
    assert_eq!((r.status, r.header("x-cluster")), (200, None));
    assert_eq!(r.header("x-served-by").as_deref(), Some("switchyard"));

    // The cli service: its entry point script with the shared CA and admin token.
    let mut rw = names.clone();
    rw.push((
        "/bootstrap/".to_string(),
        format!("{}/", bootstrap_dir.display()),
    ));
    let (mut argv, env) = service_argv(&compose, "cli", &rw);
    argv.extend(["-o", "json", "get", "proxies"].map(String::from));
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]).env("PATH", &path_env);
    for v in security_env {
        cmd.env_remove(v);
    }
    let out = cmd.envs(env).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cli: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut seen: Vec<(String, String)> = doc["proxies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().to_string(),
                p["cluster"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("proxy-eu-1".to_string(), "edge-eu".to_string()),
            ("proxy-us-1".to_string(), "edge-us".to_string())
        ]
    );
    drop(boot);
    drop(procs);
}
