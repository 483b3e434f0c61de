//! The `switchyard` and `switchyard-proxy` invocations written in the deploy files (compose,
//! rendered Kubernetes manifests, systemd units, shell scripts and README blocks), and their check
//! against the binaries' own `--help`, subcommand by subcommand.
//!
//! Extraction is pure (text in, invocations out); [`HelpSpecs`] runs the binaries' `--help`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

/// One invocation of a product binary: where it was written and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub origin: String,
    /// `switchyard` or `switchyard-proxy`.
    pub bin: String,
    pub args: Vec<String>,
}

pub const BINARIES: [&str; 2] = ["switchyard", "switchyard-proxy"];

fn basename(w: &str) -> &str {
    w.rsplit('/').next().unwrap_or(w)
}

fn is_assignment(w: &str) -> bool {
    match w.split_once('=') {
        Some((name, _)) => {
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit())
        }
        None => false,
    }
}

/// Splits shell text into simple commands: on unquoted newlines (after joining `\`-continued
/// lines), `;`, `&`, `|`, and around command substitutions `$( … )` (whose body is a command of
/// its own). Quotes are kept for [`shlex`]; `$((` arithmetic inside quotes stays in its word.
pub fn shell_segments(text: &str) -> Vec<String> {
    let text = text.replace("\\\n", " ");
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut single, mut double) = (false, false);
    let mut depth = 0usize;
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let mut push = |cur: &mut String| {
        if !cur.trim().is_empty() {
            out.push(cur.trim().to_string());
        }
        cur.clear();
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' if !single => {
                cur.push(c);
                if let Some(n) = chars.get(i + 1) {
                    cur.push(*n);
                    i += 1;
                }
            }
            '\'' if !double => {
                single = !single;
                cur.push(c);
            }
            '"' if !single => {
                double = !double;
                cur.push(c);
            }
            '#' if !single && !double && (cur.is_empty() || cur.ends_with(char::is_whitespace)) => {
                // A comment: to the end of the line.
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                push(&mut cur);
            }
            '$' if !single && !double && chars.get(i + 1) == Some(&'(') => {
                push(&mut cur);
                depth += 1;
                i += 1;
            }
            ')' if !single && !double && depth > 0 => {
                push(&mut cur);
                depth -= 1;
            }
            '\n' | ';' | '&' | '|' if !single && !double => push(&mut cur),
            _ => cur.push(c),
        }
        i += 1;
    }
    push(&mut cur);
    out
}

/// The invocation in one simple command's words, if it runs a product binary: directly, after
/// `exec`/`env`/`sudo` and assignments, after `kubectl exec … --`, or as the compose `cli`
/// service (`docker compose … run --rm cli ARGS`, whose entry point is `switchyard`).
pub fn invocation_in_words(words: &[String], origin: &str) -> Option<Invocation> {
    let mut i = 0;
    while i < words.len() {
        let w = words[i].as_str();
        if is_assignment(w)
            || matches!(
                w,
                "exec" | "sudo" | "nohup" | "command" | "do" | "then" | "else" | "time" | "!"
            )
        {
            i += 1;
            continue;
        }
        if w == "env" {
            i += 1;
            while i < words.len() && (words[i].starts_with('-') || is_assignment(&words[i])) {
                i += 1;
            }
            continue;
        }
        if w == "kubectl" && words.iter().any(|x| x == "exec") {
            let dd = words.iter().position(|x| x == "--")?;
            return invocation_in_words(&words[dd + 1..], origin);
        }
        if (w == "docker" || w == "docker-compose") && words.iter().any(|x| x == "run") {
            let cli = words.iter().position(|x| x == "cli")?;
            return Some(Invocation {
                origin: origin.to_string(),
                bin: "switchyard".into(),
                args: args_until_redirect(&words[cli + 1..]),
            });
        }
        if BINARIES.contains(&basename(w)) {
            return Some(Invocation {
                origin: origin.to_string(),
                bin: basename(w).to_string(),
                args: args_until_redirect(&words[i + 1..]),
            });
        }
        return None;
    }
    None
}

fn args_until_redirect(words: &[String]) -> Vec<String> {
    words
        .iter()
        .take_while(|w| {
            let t = w.trim_start_matches(|c: char| c.is_ascii_digit());
            !(t.starts_with('>') || t.starts_with('<'))
        })
        .cloned()
        .collect()
}

/// Every invocation in shell text (a script, a README block, an `sh -c` argument).
pub fn invocations_in_shell(text: &str, origin: &str) -> Result<Vec<Invocation>> {
    let mut out = Vec::new();
    for seg in shell_segments(text) {
        let words = shlex::split(&seg)
            .ok_or_else(|| anyhow!("{origin}: cannot split shell words of {seg:?}"))?;
        out.extend(invocation_in_words(&words, origin));
    }
    Ok(out)
}

/// An argv (a compose `command`, a container's `command` + `args`): a shell's `-c` script or
/// a direct invocation.
pub fn invocations_in_argv(argv: &[String], origin: &str) -> Result<Vec<Invocation>> {
    let Some(first) = argv.first() else {
        return Ok(Vec::new());
    };
    if matches!(basename(first), "sh" | "bash" | "dash") {
        return match argv.iter().position(|a| a == "-c") {
            Some(c) => match argv.get(c + 1) {
                Some(script) => invocations_in_shell(script, origin),
                None => bail!("{origin}: `sh -c` without a script"),
            },
            None => Ok(Vec::new()),
        };
    }
    Ok(invocation_in_words(argv, origin).into_iter().collect())
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a
            .iter()
            .map(|x| match x {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        Value::String(s) => shlex::split(s).unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// A compose file's invocations: each service's `entrypoint` + `command` (`$$` is compose's
/// escape for `$`).
pub fn invocations_in_compose(yaml: &str, origin: &str) -> Result<Vec<Invocation>> {
    let doc: Value = serde_norway::from_str(yaml).context("compose file: YAML")?;
    let services = doc
        .get("services")
        .and_then(Value::as_object)
        .ok_or_else(|| anyhow!("{origin}: no services"))?;
    let mut out = Vec::new();
    for (name, svc) in services {
        let mut argv = svc.get("entrypoint").map(strings).unwrap_or_default();
        argv.extend(svc.get("command").map(strings).unwrap_or_default());
        let argv: Vec<String> = argv.iter().map(|a| a.replace("$$", "$")).collect();
        out.extend(invocations_in_argv(
            &argv,
            &format!("{origin} service {name}"),
        )?);
    }
    Ok(out)
}

/// Rendered Kubernetes manifests (a multi-document YAML stream): every container's and init
/// container's `command` + `args` (`$$` is Kubernetes' escape for `$`).
pub fn invocations_in_manifests(yaml: &str, origin: &str) -> Result<Vec<Invocation>> {
    let mut out = Vec::new();
    for de in serde_norway::Deserializer::from_str(yaml) {
        let doc: Value = serde::Deserialize::deserialize(de).context("manifest: YAML")?;
        let kind = doc["kind"].as_str().unwrap_or("");
        let name = doc["metadata"]["name"].as_str().unwrap_or("");
        let pod = &doc["spec"]["template"]["spec"];
        for list in ["initContainers", "containers"] {
            for c in pod[list].as_array().into_iter().flatten() {
                let mut argv = strings(&c["command"]);
                argv.extend(strings(&c["args"]));
                let argv: Vec<String> = argv.iter().map(|a| a.replace("$$", "$")).collect();
                let at = format!(
                    "{origin} {kind}/{name} container {}",
                    c["name"].as_str().unwrap_or("")
                );
                out.extend(invocations_in_argv(&argv, &at)?);
            }
        }
    }
    Ok(out)
}

/// `KEY=VALUE` lines of a systemd environment file.
pub fn env_file(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        .collect()
}

/// A systemd unit's `ExecStart=` lines, with variables substituted as systemd does: `${VAR}` is
/// one word, `$VAR` splits on whitespace; specifiers (`%d`, `%S`) stay as written.
pub fn invocations_in_unit(
    unit: &str,
    env: &BTreeMap<String, String>,
    origin: &str,
) -> Result<Vec<Invocation>> {
    let joined = unit.replace("\\\n", " ");
    let mut out = Vec::new();
    for line in joined.lines() {
        let Some(cmd) = line.trim().strip_prefix("ExecStart=") else {
            continue;
        };
        let cmd = cmd.trim_start_matches(['-', '@', ':', '+', '!']);
        let mut argv = Vec::new();
        for w in shlex::split(cmd).ok_or_else(|| anyhow!("{origin}: ExecStart words"))? {
            if let Some(var) = w.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
                let v = env.get(var).ok_or_else(|| {
                    anyhow!("{origin}: ${{{var}}} not set in the environment file")
                })?;
                argv.push(v.clone());
            } else if let Some(var) = w.strip_prefix('$') {
                let v = env
                    .get(var)
                    .ok_or_else(|| anyhow!("{origin}: ${var} not set in the environment file"))?;
                argv.extend(v.split_whitespace().map(str::to_string));
            } else {
                argv.push(w);
            }
        }
        out.extend(invocations_in_argv(&argv, origin)?);
    }
    Ok(out)
}

/// The ```` ```sh ```` blocks of a Markdown file.
pub fn markdown_sh_blocks(md: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in md.lines() {
        match cur.as_mut() {
            Some(b) if line.trim_start().starts_with("```") => {
                out.push(std::mem::take(b));
                cur = None;
            }
            Some(b) => {
                b.push_str(line);
                b.push('\n');
            }
            None if line.trim_start() == "```sh" => cur = Some(String::new()),
            None => {}
        }
    }
    out
}

/// What one `--help` page accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HelpSpec {
    /// Long flag → takes a value.
    pub long: BTreeMap<String, bool>,
    /// Short flag → takes a value.
    pub short: BTreeMap<char, bool>,
    pub subcommands: BTreeSet<String>,
}

/// Parses clap's `--help` output: option lines (`  -o, --output <OUTPUT>`, `      --insecure`)
/// and the `Commands:` section.
pub fn parse_help(text: &str) -> HelpSpec {
    let mut spec = HelpSpec::default();
    let mut section = "";
    for line in text.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            section = line.trim_end_matches(':');
            continue;
        }
        let t = line.trim_start();
        let indent = line.len() - t.len();
        if section == "Commands" && indent == 2 {
            if let Some(name) = t.split_whitespace().next() {
                if name != "help" {
                    spec.subcommands.insert(name.to_string());
                }
            }
            continue;
        }
        if section != "Options" || !t.starts_with('-') {
            continue;
        }
        // `-o, --output <OUTPUT>` / `--insecure` / `-h, --help`
        let mut rest = t;
        let mut short = None;
        if let Some(s) = rest.strip_prefix('-').filter(|s| !s.starts_with('-')) {
            short = s.chars().next();
            rest = s
                .get(1..)
                .unwrap_or("")
                .trim_start_matches(',')
                .trim_start();
        }
        let (long, after) = match rest.strip_prefix("--") {
            Some(l) => {
                let end = l
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                    .unwrap_or(l.len());
                (Some(l[..end].to_string()), &l[end..])
            }
            None => (None, rest),
        };
        let takes_value =
            after.starts_with(" <") || after.starts_with("=<") || after.starts_with(" [");
        if let Some(l) = long {
            spec.long.insert(l, takes_value);
        }
        if let Some(s) = short {
            spec.short.insert(s, takes_value);
        }
    }
    spec
}

/// `--help` of each (binary, subcommand path), run once.
pub struct HelpSpecs {
    bin_dir: PathBuf,
    cache: HashMap<(String, Vec<String>), HelpSpec>,
}

impl HelpSpecs {
    pub fn new(bin_dir: &Path) -> Self {
        Self {
            bin_dir: bin_dir.to_path_buf(),
            cache: HashMap::new(),
        }
    }

    pub fn get(&mut self, bin: &str, path: &[String]) -> Result<HelpSpec> {
        let key = (bin.to_string(), path.to_vec());
        if let Some(s) = self.cache.get(&key) {
            return Ok(s.clone());
        }
        let out = Command::new(self.bin_dir.join(bin))
            .args(path)
            .arg("--help")
            .env_remove("SWITCHYARD_ENDPOINTS")
            .output()
            .with_context(|| format!("running {bin} {} --help", path.join(" ")))?;
        if !out.status.success() {
            bail!(
                "{bin} {} --help failed: {}",
                path.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let spec = parse_help(&String::from_utf8_lossy(&out.stdout));
        if spec.long.is_empty() {
            bail!("{bin} {} --help: no options found", path.join(" "));
        }
        self.cache.insert(key, spec.clone());
        Ok(spec)
    }

    /// Checks every flag of `inv` against the `--help` of the subcommand it reaches; returns
    /// the subcommand path.
    pub fn check(&mut self, inv: &Invocation) -> Result<Vec<String>> {
        let mut path: Vec<String> = Vec::new();
        let mut spec = self.get(&inv.bin, &path)?;
        let mut positional_seen = false;
        let mut i = 0;
        let what = |path: &[String]| format!("{} {}", inv.bin, path.join(" "));
        while i < inv.args.len() {
            let a = &inv.args[i];
            if a == "--" {
                break;
            }
            if let Some(long) = a.strip_prefix("--") {
                let (name, inline) = match long.split_once('=') {
                    Some((n, _)) => (n, true),
                    None => (long, false),
                };
                let Some(&takes) = spec.long.get(name) else {
                    bail!(
                        "{}: `{}` passes --{name}, which `{} --help` does not list",
                        inv.origin,
                        what(&path).trim(),
                        what(&path).trim()
                    );
                };
                if inline && !takes {
                    bail!("{}: --{name} takes no value", inv.origin);
                }
                if takes && !inline {
                    if i + 1 >= inv.args.len() {
                        bail!("{}: --{name} needs a value", inv.origin);
                    }
                    i += 1;
                }
            } else if let Some(s) = a.strip_prefix('-').filter(|s| !s.is_empty()) {
                let c = s.chars().next().unwrap_or('-');
                let Some(&takes) = spec.short.get(&c) else {
                    bail!(
                        "{}: `{}` passes -{c}, unknown",
                        inv.origin,
                        what(&path).trim()
                    );
                };
                if takes && s.len() == 1 {
                    i += 1;
                }
            } else if !positional_seen && spec.subcommands.contains(a.as_str()) {
                path.push(a.clone());
                spec = self.get(&inv.bin, &path)?;
            } else {
                if !positional_seen && !spec.subcommands.is_empty() && !a.starts_with('$') {
                    bail!(
                        "{}: `{}` has no subcommand {a:?}",
                        inv.origin,
                        what(&path).trim()
                    );
                }
                positional_seen = true;
            }
            i += 1;
        }
        Ok(path)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sv(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn shell_text_yields_commands_in_command_position_only() {
        let text = r#"
install -m 0755 target/release/switchyard /usr/local/bin/   # not an invocation
JOIN=$(kubectl -n s exec switchyard-0 -- env SWITCHYARD_TOKEN="$ADMIN" switchyard --endpoints a:1 token create --role proxy)
exec switchyard server \
   --node-id "$(( ${POD_NAME##*-} + 1 ))" --data-dir /d
switchyard token create --role proxy > "$OUT/join.token.tmp"
docker compose -f c.yaml run --rm cli get proxies
"#;
        let inv = invocations_in_shell(text, "t").unwrap();
        let got: Vec<(String, Vec<String>)> = inv.into_iter().map(|i| (i.bin, i.args)).collect();
        assert_eq!(
            got,
            vec![
                (
                    "switchyard".into(),
                    sv(&["--endpoints", "a:1", "token", "create", "--role", "proxy"])
                ),
                (
                    "switchyard".into(),
                    sv(&[
                        "server",
                        "--node-id",
                        "$(( ${POD_NAME##*-} + 1 ))",
                        "--data-dir",
                        "/d"
                    ])
                ),
                (
                    "switchyard".into(),
                    sv(&["token", "create", "--role", "proxy"])
                ),
                ("switchyard".into(), sv(&["get", "proxies"])),
            ]
        );
    }

    #[test]
    fn systemd_substitutes_braced_as_one_word_and_bare_as_words() {
        let unit =
            "[Service]\nExecStart=/usr/local/bin/switchyard-proxy \\\n  --zone ${Z} \\\n  $ARGS\n";
        let env = env_file("# c\nZ=eu 1\nARGS=--entrypoint web=0.0.0.0:80 --insecure\n");
        let inv = invocations_in_unit(unit, &env, "u").unwrap();
        assert_eq!(
            inv[0].args,
            sv(&[
                "--zone",
                "eu 1",
                "--entrypoint",
                "web=0.0.0.0:80",
                "--insecure"
            ])
        );
        assert!(invocations_in_unit("ExecStart=/x/switchyard $NOPE", &env, "u").is_err());
    }

    #[test]
    fn help_pages_parse_into_flags_and_subcommands() {
        let help = "Usage: x\n\nCommands:\n  server   Run\n  token    Tokens\n  help     Print\n\nOptions:\n      --endpoints <ENDPOINTS>\n          text\n  -o, --output <OUTPUT>\n      --insecure\n          Plaintext\n  -h, --help\n";
        let s = parse_help(help);
        assert_eq!(
            s.subcommands,
            ["server", "token"].iter().map(|s| s.to_string()).collect()
        );
        assert_eq!(s.long.get("endpoints"), Some(&true));
        assert_eq!(s.long.get("insecure"), Some(&false));
        assert_eq!(s.long.get("output"), Some(&true));
        assert_eq!(s.short.get(&'o'), Some(&true));
        assert_eq!(s.short.get(&'h'), Some(&false));
    }

    #[test]
    fn compose_and_manifests_unescape_dollars() {
        let compose = "services:\n  a:\n    command: [\"sh\", \"-c\", \"X=$$(cat f) exec switchyard-proxy --zone=z\"]\n  b:\n    image: x\n";
        let inv = invocations_in_compose(compose, "c").unwrap();
        assert_eq!(inv.len(), 1);
        assert_eq!(inv[0].args, sv(&["--zone=z"]));
        let m = "kind: Deployment\nmetadata: {name: p}\nspec:\n  template:\n    spec:\n      containers:\n        - name: c\n          command: [switchyard-proxy]\n          args: [--region=$(REGION)]\n---\nkind: Service\nmetadata: {name: s}\n";
        let inv = invocations_in_manifests(m, "k").unwrap();
        assert_eq!(inv.len(), 1);
        assert_eq!(inv[0].args, sv(&["--region=$(REGION)"]));
    }
}
