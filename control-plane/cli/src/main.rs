//! `switchyard`: a control node (`switchyard server`), a one-command local setup (`switchyard dev`)
//! and the admin CLI, which talks to any control node over the gRPC admin API.
//!
//! This binary only wires things together: the node lives in `switchyard-node`, the config model in
//! `switchyard-config`.

mod args;
mod client;
mod commands;
mod output;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            // One line: the whole cause chain, newlines folded.
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let global = cli.global;
    client::configure(client::Credentials {
        // `dev` runs an insecure local node and talks to it in plaintext.
        insecure: global.insecure || matches!(cli.command, Command::Dev(_)),
        ca_cert: global.ca_cert.clone(),
        token: global.token.clone(),
    });
    match cli.command {
        Command::Server(a) => commands::server::run(*a, &global).await,
        Command::Dev(a) => commands::dev::run(a).await,
        Command::Apply(a) => commands::apply::run(&global, a).await,
        Command::Get(a) => commands::get::run(&global, a).await,
        Command::Delete(a) => commands::delete::run(&global, a).await,
        Command::Cluster(a) => commands::cluster::run(&global, a).await,
        Command::Token(a) => commands::token::run(&global, a).await,
        Command::Rollout(a) => commands::rollout::run(&global, a).await,
        Command::Explain(a) => commands::explain::run(&global, a).await,
        Command::Bench(a) => commands::bench::run(&global, a).await,
        Command::Version => {
            println!("switchyard {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
    }
}
