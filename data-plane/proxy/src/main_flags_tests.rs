//! Unit tests of the `switchyard-proxy` binary's flags (`main.rs`; not part of the library).

use clap::{ArgAction, CommandFactory, FromArgMatches};

use crate::Args;

/// `SWITCHYARD_INSECURE=1` and every other usual spelling of a boolean work for every boolean
/// flag read from the environment.
#[test]
fn boolean_env_flags_accept_boolish_values() {
    let cmd = Args::command();
    let flags: Vec<(String, bool)> = cmd
        .get_arguments()
        .filter(|a| a.get_env().is_some())
        .filter_map(|a| match a.get_action() {
            ArgAction::SetTrue => Some((a.get_id().to_string(), true)),
            ArgAction::SetFalse => Some((a.get_id().to_string(), false)),
            _ => None,
        })
        .collect();
    assert!(flags.iter().any(|(id, _)| id == "insecure"), "{flags:?}");
    let argv = [
        "switchyard-proxy",
        "--config-file",
        "dynamic.yaml",
        "--entrypoint",
        "web=127.0.0.1:0",
    ];
    for (id, set_true) in flags {
        // A variable of this test's own, so that parallel tests never see it.
        let var: &'static str = Box::leak(
            format!("SWITCHYARD_TEST_BOOLISH_PROXY_{}", id.to_uppercase()).into_boxed_str(),
        );
        for (value, on) in [
            ("1", true),
            ("0", false),
            ("true", true),
            ("false", false),
            ("Yes", true),
            ("yes", true),
            ("no", false),
            ("on", true),
            ("off", false),
        ] {
            std::env::set_var(var, value);
            let m = Args::command()
                .mut_arg(&id, |a| a.env(var))
                .try_get_matches_from(argv)
                .unwrap_or_else(|e| panic!("{var}={value}: {e}"));
            assert_eq!(m.get_flag(&id), on == set_true, "{var}={value}");
            if id == "insecure" {
                let args = Args::from_arg_matches(&m).expect("typed");
                assert_eq!(args.insecure, on, "{var}={value}");
            }
        }
        std::env::set_var(var, "maybe");
        let err = Args::command()
            .mut_arg(&id, |a| a.env(var))
            .try_get_matches_from(argv)
            .expect_err("maybe is not a boolean");
        assert!(err.to_string().contains("maybe"), "{err}");
        std::env::remove_var(var);
    }
}
