//! lego's `exec` provider: runs `<path> present <fqdn> <value>` / `<path> cleanup <fqdn>
//! <value>`, or in `RAW` mode `<path> present -- <domain> <token> <keyAuth>`, on the leader.
//! A non-zero exit is a failure (its stderr, bounded, is the message).

use std::process::Stdio;

use switchyard_config::ExecHook;

use super::TxtRecord;

/// The arguments for one record.
pub fn args(c: &ExecHook, r: &TxtRecord, add: bool) -> Vec<String> {
    let action = if add { "present" } else { "cleanup" }.to_string();
    if c.mode.as_deref() == Some("RAW") {
        vec![
            action,
            "--".into(),
            r.domain.clone(),
            r.token.clone(),
            r.key_auth.clone(),
        ]
    } else {
        vec![action, r.fqdn.clone(), r.value.clone()]
    }
}

/// Runs the hook for every record.
pub async fn run(c: &ExecHook, records: &[TxtRecord], add: bool) -> Result<(), String> {
    for r in records {
        let out = tokio::process::Command::new(&c.path)
            .args(args(c, r, add))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| format!("exec {}: {e}", c.path))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let err: String = err.chars().take(512).collect();
            return Err(format!(
                "exec {} for {}: {} {}",
                c.path,
                r.fqdn,
                out.status,
                err.trim()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_as_lego() {
        let r = TxtRecord::new("a.test", "tok", "tok.thumb", "val");
        let mut c = ExecHook::default();
        assert_eq!(
            args(&c, &r, true),
            vec!["present", "_acme-challenge.a.test.", "val"]
        );
        c.mode = Some("RAW".into());
        assert_eq!(
            args(&c, &r, false),
            vec!["cleanup", "--", "a.test", "tok", "tok.thumb"]
        );
    }

    #[tokio::test]
    async fn a_failing_hook_reports_its_stderr() {
        let r = TxtRecord::new("a.test", "tok", "tok.thumb", "val");
        let c = ExecHook {
            path: "/bin/sh".into(),
            mode: None,
        };
        // `sh present …` fails: no such script file.
        let e = run(&c, &[r], true).await.expect_err("fails");
        assert!(
            e.contains("/bin/sh") && e.contains("_acme-challenge.a.test."),
            "{e}"
        );
    }
}
