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
